"""One RLM job as a stream: the engine runs in its own task, its events flow through a
queue to the response, and every way a job can end is accounted for.

The job has its own task so that it can be stopped from outside at any moment — by the
whole-job timeout, by a lost concurrency token, by the client going away — and always
runs its clean-up (the sandbox is killed in the engine's `finally`). The stream, in turn,
always ends with exactly one `done`, carrying the usage spent so far even after an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from tinychat_common.errors import TinyChatError
from tinychat_common.events import Done, Error, Event

from .engine import Engine, JobRecord, RlmJob
from .errors import RlmTimeout, TokenLost

log = logging.getLogger("rlm_service.jobs")

_END = object()

Finished = Callable[[RlmJob, JobRecord, float], None]


class JobRun:
    def __init__(self, engine: Engine, job: RlmJob, *, timeout: float, on_finished: Finished) -> None:
        self.engine = engine
        self.job = job
        self.timeout = timeout
        self.record = JobRecord()
        self._on_finished = on_finished
        self._task: asyncio.Task[None] | None = None
        self._token_lost = False

    def lose_token(self, _token: str) -> None:
        """The limiter's callback: without its token the job may not go on."""
        self._token_lost = True
        if self._task is not None:
            self._task.cancel()

    async def events(self) -> AsyncIterator[Event]:
        started = time.monotonic()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(queue.put_nowait), name="rlm-job")
        self._task.add_done_callback(lambda _task: queue.put_nowait(_END))
        if self._token_lost:
            self._task.cancel()
        try:
            while (item := await queue.get()) is not _END:
                yield item
            failure = self._failure()
            usage = self.record.usage.as_dict()
            if failure is not None:
                self.record.outcome = _outcome_of(failure)
                yield Error(failure.message, failure.code)
                yield Done("error", usage)
            else:
                yield Done("length" if self.record.outcome in ("forced", "budget") else "stop", usage)
        finally:
            if not self._task.done():
                self.record.outcome = "cancelled"
                self._task.cancel()
                # Wait for the sandbox to be killed before the token is given back.
                await asyncio.wait({self._task})
            self._on_finished(self.job, self.record, time.monotonic() - started)

    async def _run(self, emit: Callable[[Event], None]) -> None:
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.engine.run(self.job, emit, self.record)
        except TimeoutError:
            if deadline.expired():
                raise RlmTimeout(self.timeout) from None
            raise

    def _failure(self) -> TinyChatError | None:
        """How the finished task failed, as an error the user can read; None on success."""
        assert self._task is not None
        if self._task.cancelled():
            return TokenLost() if self._token_lost else TinyChatError("The RLM job was stopped.")
        exc = self._task.exception()
        if exc is None:
            return None
        if isinstance(exc, TinyChatError):
            return exc
        log.error("RLM job failed", exc_info=exc)
        return TinyChatError()


def _outcome_of(failure: TinyChatError) -> str:
    if isinstance(failure, RlmTimeout):
        return "timeout"
    if isinstance(failure, TokenLost):
        return "token_lost"
    return "error" if failure.code != "cell_timeout" else "cell_timeout"


async def release_quietly(release: Any) -> None:
    """Give a token back even if the handler is being cancelled again meanwhile."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(release)
