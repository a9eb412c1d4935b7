"""Waiting, boundedly, for something the system does in the background."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

POLL_INTERVAL_SECONDS = 0.05


async def wait_until(check: Callable[[], Any], what: str = "condition", seconds: float = 10.0) -> None:
    """Poll `check` (sync or async) until it is true; fail naming `what` after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {seconds} s")
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


async def wait_until_serving(
    url: str,
    process: asyncio.subprocess.Process,
    what: str,
    seconds: float,
    details: Callable[[], str] = lambda: "",
) -> None:
    """Poll `url` until it answers 200; fail if `process` exits first or `seconds` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if process.returncode is not None:
                pytest.fail(f"{what} exited at start (code {process.returncode}){details()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(1)) as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.1)
    pytest.fail(f"{what} did not answer {url} within {seconds} s{details()}")
