"""One RLM job as a stream: the engine runs in its own task, its events flow through a
queue to the response, and every way a job can end is accounted for.

The job has its own task so that it can be stopped from outside at any moment — by the
whole-job timeout, by a lost concurrency token, by the client going away — and always
runs its clean-up (the sandbox is killed in the engine's `finally`). The stream, in turn,
always ends with exactly one `done`, carrying the usage spent so far even after an error.

`Jobs` is the one owner of a job's lifecycle: it takes the concurrency token and counts it,
builds the engine and the `JobRun` (task, queue, outcome), and when the run is over counts
the job and writes its audit line; the token goes back however the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from tinychat_common.chatlog import ChatLog, log_record
from tinychat_common.errors import TinyChatError
from tinychat_common.events import Done, Event, Status
from tinychat_common.limiter import ConcurrencyLimiter, slot

from .chat_client import ChatClient
from .config import RlmSettings
from .engine import Engine, EngineLimits, JobRecord, RlmJob
from .errors import RlmTimeout, TokenLost
from .metrics import RlmMetrics
from .recursion import Recursion
from .sandbox.base import SANDBOX_PROGRESS, SandboxFactory

log = logging.getLogger(__name__)

_END = object()
# Events a job may have waiting for its client before the job itself waits (a slow client
# slows the job; it does not grow rlm-service's memory).
EVENT_QUEUE_BOUND = 32

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
        queue = BoundedEvents(EVENT_QUEUE_BOUND)
        self._task = asyncio.create_task(self._run(queue.put), name="rlm-job")
        self._task.add_done_callback(lambda _task: queue.put(_END))
        if self._token_lost:
            self._task.cancel()
        try:
            while (item := await queue.get()) is not _END:
                yield item
            failure = self._failure()
            usage = self.record.usage.as_dict()
            if failure is not None:
                self.record.outcome = _outcome_of(failure)
                yield failure.to_event()
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

    async def _run(self, emit: Callable[[Event], Awaitable[None]]) -> None:
        try:
            # In this task's own context: what holds up a sandbox's start (a full pool) is
            # told to the person waiting, as the job's status events.
            SANDBOX_PROGRESS.set(lambda text: emit(Status(text)))
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


class BoundedEvents:
    """The events between a job and its client. `put` never drops an event (the engine's
    callback is synchronous); it returns an awaitable that is done once fewer than `bound`
    events wait, and the engine awaits it, so the job waits for a slow client."""

    def __init__(self, bound: int) -> None:
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._bound = bound
        self._waiting_for_room: list[asyncio.Future[None]] = []

    def put(self, item: Any) -> asyncio.Future[None]:
        self._items.put_nowait(item)
        room = asyncio.get_running_loop().create_future()
        if self._items.qsize() < self._bound:
            room.set_result(None)
        else:
            self._waiting_for_room.append(room)
        return room

    async def get(self) -> Any:
        item = await self._items.get()
        if self._items.qsize() < self._bound:
            for room in self._waiting_for_room:
                if not room.done():
                    room.set_result(None)
            self._waiting_for_room.clear()
        return item

    def qsize(self) -> int:
        return self._items.qsize()


def _outcome_of(failure: TinyChatError) -> str:
    if isinstance(failure, RlmTimeout):
        return "timeout"
    if isinstance(failure, TokenLost):
        return "token_lost"
    return "error" if failure.code != "cell_timeout" else "cell_timeout"


class Jobs:
    """Every RLM job of one app, from the token it holds to its audit line.

    `admit(job)` takes a concurrency token (over the limit `Busy`, counted, before anything
    starts), builds the job's engine and its `JobRun`, and gives the token back however the
    job ends. The run owns the job's task, its event queue and its outcome; when it is over,
    `finished` counts it and writes its audit line. The HTTP handler only reads the request
    and serves `run.events()`."""

    def __init__(
        self,
        settings: RlmSettings,
        *,
        limiter: ConcurrencyLimiter,
        chat_session: aiohttp.ClientSession,
        sandboxes: SandboxFactory,
        metrics: RlmMetrics,
        chat_log: ChatLog,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.chat_session = chat_session
        self.sandboxes = sandboxes
        self.metrics = metrics
        self.chat_log = chat_log

    @contextlib.asynccontextmanager
    async def admit(self, job: RlmJob) -> AsyncIterator[JobRun]:
        metrics = self.metrics
        async with slot(
            self.limiter, in_use=metrics.tokens_in_use, on_busy=lambda _: metrics.jobs.labels("busy").inc()
        ) as token:
            engine = self.engine_for(job)
            run = JobRun(engine, job, timeout=self.settings.rlm_timeout, on_finished=self.finished)
            self.limiter.on_lost(token, run.lose_token)
            engine.recursion.on_token_lost = run.lose_token
            yield run

    def engine_for(self, job: RlmJob) -> Engine:
        settings = self.settings
        chat = ChatClient(
            self.chat_session,
            settings.chat_service_url,
            model=job.model,
            temperature=job.temperature,
            timeout=settings.chat_service_timeout,
            user=job.user,
        )
        limits = EngineLimits(
            max_iterations=settings.rlm_max_iterations,
            cell_timeout=settings.rlm_cell_timeout,
            output_chars=settings.rlm_output_chars,
            max_subcall_chars=settings.rlm_max_subcall_chars,
            subcall_concurrency=settings.rlm_subcall_concurrency,
            max_subcalls=settings.rlm_max_subcalls,
            max_depth=settings.rlm_max_depth,
            budget_tokens=settings.rlm_budget_tokens,
            budget_seconds=settings.rlm_budget_seconds,
        )
        return Engine(
            chat=chat,
            sandboxes=self.sandboxes,
            limits=limits,
            watch=self.metrics,
            recursion=Recursion(max_depth=settings.rlm_max_depth, limiter=self.limiter),
        )

    def finished(self, job: RlmJob, record: JobRecord, seconds: float) -> None:
        """Count the job and write its audit line: the code that ran, the answer, the usage."""
        self.metrics.jobs.labels(record.outcome).inc()
        self.metrics.job_seconds.observe(seconds)
        self.metrics.subcalls.inc(record.subcalls)
        self.chat_log.record(
            log_record(
                "rlm",
                model=job.model,
                outcome=record.outcome,
                seconds=seconds,
                user=job.user,
                temperature=job.temperature,
                question=job.question,
                context_chars=job.context_chars,
                documents=job.document_names,
                iterations=record.iterations,
                code=record.cells,
                subcalls=record.subcalls,
                answer=record.answer,
                usage=record.usage.as_dict(),
            )
        )
        log.info("rlm job %s after %d iteration(s) in %.1fs", record.outcome, record.iterations, seconds)
