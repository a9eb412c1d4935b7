"""POST /v1/rlm/stream and GET /v1/rlm/config."""

from __future__ import annotations

import logging

from aiohttp import web
from tinychat_common.chatlog import log_record
from tinychat_common.internal_auth import USER_HEADER
from tinychat_common.limiter import slot
from tinychat_common.slow_clients import reads_own_body
from tinychat_common.streaming import serve_events

from .app_keys import CHAT_LOG, CHAT_SESSION, LIMITER, RLM_METRICS, SANDBOX_STATUS, SANDBOXES, SETTINGS
from .chat_client import ChatClient
from .config import RlmSettings
from .documents import read_chat_request
from .engine import Engine, EngineLimits, JobRecord, RlmJob, job_from_request
from .errors import RlmDisabled, SandboxUnavailable
from .jobs import JobRun
from .recursion import Recursion

log = logging.getLogger(__name__)


async def rlm_config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    problem = await request.app[SANDBOX_STATUS].current_problem() if settings.rlm_enabled else None
    return web.json_response(
        {
            "enabled": settings.rlm_enabled and problem is None,
            "problem": problem,
            "max_iterations": settings.rlm_max_iterations,
            "max_depth": settings.rlm_max_depth,
            "timeout": settings.rlm_timeout,
            "sandbox": settings.rlm_sandbox,
        }
    )


@reads_own_body  # in chunks, never whole (documents.read_chat_request)
async def rlm_stream(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    metrics = app[RLM_METRICS]
    if not settings.rlm_enabled:
        raise RlmDisabled()
    problem = await app[SANDBOX_STATUS].current_problem()
    if problem is not None:
        raise SandboxUnavailable(f"RLM is unavailable: {problem}")
    # Everything that can be wrong with the request is answered as JSON before a token is taken.
    job = job_from_request(await read_chat_request(request, settings.rlm_max_request_bytes))
    job.user = request.headers.get(USER_HEADER)
    limiter = app[LIMITER]
    async with slot(
        limiter, in_use=metrics.tokens_in_use, on_busy=lambda _: metrics.jobs.labels("busy").inc()
    ) as token:
        engine = build_engine(request, job, settings)
        run = JobRun(
            engine,
            job,
            timeout=settings.rlm_timeout,
            on_finished=lambda job, record, seconds: job_finished(app, job, record, seconds),
        )
        limiter.on_lost(token, run.lose_token)
        engine.recursion.on_token_lost = run.lose_token
        return await serve_events(request, run.events())


def build_engine(request: web.Request, job: RlmJob, settings: RlmSettings) -> Engine:
    app = request.app
    chat = ChatClient(
        app[CHAT_SESSION],
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
        sandboxes=app[SANDBOXES],
        limits=limits,
        watch=app[RLM_METRICS],
        recursion=Recursion(max_depth=settings.rlm_max_depth, limiter=app[LIMITER]),
    )


def job_finished(app: web.Application, job: RlmJob, record: JobRecord, seconds: float) -> None:
    """Count the job and write its audit line: the code that ran, the answer, the usage."""
    metrics = app[RLM_METRICS]
    metrics.jobs.labels(record.outcome).inc()
    metrics.job_seconds.observe(seconds)
    metrics.subcalls.inc(record.subcalls)
    app[CHAT_LOG].record(
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
