"""What the fault tests share: services as real subprocesses (for faults that are a kill),
apps in-process (everywhere else), and the "nothing left behind" checks. Streams are read
with tests.support.sse.EventReader, bounded by FAULT_BOUND_SECONDS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_protocol import RequestHandler

from tests.support.net import free_port
from tests.support.polling import wait_until_serving

# Every fault must end within this; the settings below make each one end well inside it.
FAULT_BOUND_SECONDS = 10.0
START_TIMEOUT_SECONDS = 20.0


class ServiceProcess:
    """`python -m <package>` on a free loopback port, as `make run` starts it: the thing to
    SIGKILL when the fault is a crash. Its log goes to a temp file shown on failure."""

    def __init__(self, package: str, env: dict[str, str]) -> None:
        self.package = package
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        # Kept open for the life of the process (it writes there), closed in __aexit__.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix=f"tinychat-{package}-", suffix=".log", delete=False
        )
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-4000:]

    async def start(self) -> Self:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.package, env=self._env, stdout=self._log, stderr=self._log
        )
        await self._wait_until_alive()
        return self

    async def _wait_until_alive(self) -> None:
        assert self.process is not None
        await wait_until_serving(
            self.url + "/healthz",
            self.process,
            self.package,
            START_TIMEOUT_SECONDS,
            details=lambda: ":\n" + self.log_text(),
        )

    async def kill(self) -> None:
        """SIGKILL: no drain, no clean-up, as a crash or the OOM killer would."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), 10)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


async def serve_in_process(app: web.Application) -> TestClient:
    """An app on a loopback port in this loop, with handler cancellation like run_service."""
    # start_server turns handler cancellation on. No keep-alive: an idle kept-alive
    # connection is a task of its own, which would hide or fake a leak in the task counts.
    client = TestClient(TestServer(app), connector=aiohttp.TCPConnector(force_close=True))
    await client.start_server()
    return client


@contextlib.asynccontextmanager
async def in_process(app: web.Application) -> AsyncIterator[TestClient]:
    client = await serve_in_process(app)
    try:
        yield client
    finally:
        await client.close()


def assert_readable_error_then_done(events: list[dict[str, Any]], *words: str) -> dict[str, Any]:
    """The stream's last event is its only `done` (finish_reason error), right after one
    readable `error` event: a sentence for a person, with a code, no stack trace. `words`
    must appear in it (case-insensitive), to show it names what failed."""
    assert events, "the stream was empty"
    dones = [e for e in events if e.get("done") is True]
    assert len(dones) == 1 and events[-1] is dones[0], f"not exactly one done at the end: {events[-3:]}"
    assert dones[0]["finish_reason"] == "error", dones[0]
    errors = [e for e in events if "error" in e and "done" not in e]
    assert len(errors) == 1 and events[-2] is errors[0], f"no single error before done: {events[-3:]}"
    error = errors[0]
    message = error["error"]
    assert isinstance(message, str) and len(message) >= 15 and message[0].isupper(), error
    assert error.get("code") and isinstance(error["code"], str), error
    assert "Traceback" not in message and 'File "' not in message, error
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    return error


def task_snapshot() -> set[asyncio.Task[Any]]:
    return set(asyncio.all_tasks())


async def assert_no_new_tasks(before: set[asyncio.Task[Any]], seconds: float = 5.0) -> None:
    """Every task started since `before` (handlers, relays, keepalives, lease renewals, job
    tasks) has finished; they get `seconds` to wind down after the stream ended."""
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        left = [
            t
            for t in asyncio.all_tasks()
            if t not in before and t is not me and not t.done() and not _idle_keepalive_connection(t)
        ]
        if not left:
            return
        if loop.time() > deadline:
            pytest.fail(f"tasks left running after the stream ended: {[repr(t) for t in left]}")
        await asyncio.sleep(0.05)


def _idle_keepalive_connection(task: asyncio.Task[Any]) -> bool:
    """A server connection kept alive for the next request (a service's pooled client
    connection to another), waiting for it and doing no work: pooling, not a leak."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    if frame is None or frame.f_code.co_name != "start":
        return False
    protocol = frame.f_locals.get("self")
    return isinstance(protocol, RequestHandler) and protocol._waiter is not None


async def wait_event(event: asyncio.Event, what: str, seconds: float = FAULT_BOUND_SECONDS) -> None:
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pytest.fail(f"{what}: not within {seconds} s")
