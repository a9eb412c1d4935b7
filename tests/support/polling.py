"""Waiting, boundedly, for something the system does in the background."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

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
