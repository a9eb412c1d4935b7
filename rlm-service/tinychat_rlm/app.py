"""The rlm-service application: `create_app(settings)` builds it, nothing global."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web
from tinychat_common.chatlog import chat_log_context
from tinychat_common.limiter import limiter_context
from tinychat_common.metrics import METRICS
from tinychat_common.probes import add_ready_check
from tinychat_common.service import base_app, client_session_context

from .app_keys import (
    CHAT_LOG,
    CHAT_SESSION,
    JOBS,
    LIMITER,
    RLM_METRICS,
    SANDBOX_STATUS,
    SANDBOXES,
    SETTINGS,
)
from .config import RlmSettings
from .jobs import Jobs
from .metrics import RlmMetrics
from .routes import add_routes
from .sandbox import make_sandbox_factory
from .sandbox.base import SandboxError, SandboxFactory
from .sandbox_status import SandboxStatus

__all__ = ["CHAT_LOG", "LIMITER", "create_app"]


def create_app(settings: RlmSettings, *, sandboxes: SandboxFactory | None = None) -> web.Application:
    """`sandboxes` replaces the factory RLM_SANDBOX names (tests wrap the real one to watch it)."""
    app = base_app(
        settings,
        "rlm-service",
        client_max_size=settings.rlm_max_request_bytes,
        client_max_size_setting="RLM_MAX_REQUEST_BYTES",
    )
    app[SETTINGS] = settings
    app[RLM_METRICS] = RlmMetrics(app[METRICS])
    app.cleanup_ctx.append(client_session_context(CHAT_SESSION, internal_token=settings.bearer_token))
    app.cleanup_ctx.append(chat_log_context(CHAT_LOG, settings.chat_log))
    app.cleanup_ctx.append(
        limiter_context(
            LIMITER,
            "rlm",
            settings.max_concurrent_rlm,
            settings,
            lease_seconds=settings.rlm_token_lease_seconds,
        )
    )
    app.cleanup_ctx.append(sandboxes_context(sandboxes))
    app.cleanup_ctx.append(jobs_context)
    add_ready_check(app, tokens_ready)
    add_ready_check(app, sandbox_ready)
    add_routes(app)
    return app


def sandboxes_context(
    given: SandboxFactory | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def sandboxes_ctx(app: web.Application) -> AsyncIterator[None]:
        factory = given or make_sandbox_factory(app[SETTINGS])
        status = SandboxStatus(factory)
        # Sandboxes a crashed earlier run left behind go first. An engine that cannot be
        # reached does not stop the service: chat goes on, and RLM reports why it is off.
        try:
            await factory.reap_leftovers()
        except SandboxError as exc:
            status.record(str(exc))
        else:
            # Find out now (the process backend starts a test sandbox) whether RLM can run,
            # so the reason is in the log at start and no job pays for the probe.
            await status.current_problem()
        app[SANDBOXES] = factory
        app[SANDBOX_STATUS] = status
        yield
        await factory.close()

    return sandboxes_ctx


async def jobs_context(app: web.Application) -> AsyncIterator[None]:
    """The owner of every job's lifecycle, made once the parts it hands each job are open."""
    app[JOBS] = Jobs(
        app[SETTINGS],
        limiter=app[LIMITER],
        chat_session=app[CHAT_SESSION],
        sandboxes=app[SANDBOXES],
        metrics=app[RLM_METRICS],
        chat_log=app[CHAT_LOG],
    )
    yield


async def tokens_ready(app: web.Application) -> dict[str, object]:
    """Reports where the tokens live. A Redis outage does not make the service unready:
    requests then get a readable 503 from here instead of no answer at all."""
    settings = app[SETTINGS]
    if not settings.redis_url:
        return {"tokens": "local"}
    limiter = app[LIMITER]
    try:
        in_use = await limiter.in_use()
    except Exception:
        return {"tokens": "redis unreachable"}
    return {"tokens": "redis", "tokens_in_use": in_use}


async def sandbox_ready(app: web.Application) -> dict[str, object]:
    """The service is ready either way (chat goes on without RLM); /readyz and the gateway's
    /api/health say when RLM is off and why."""
    if not app[SETTINGS].rlm_enabled:
        return {"rlm": "disabled"}
    problem = await app[SANDBOX_STATUS].current_problem()
    if problem is None:
        return {"rlm": "available", "sandbox": app[SETTINGS].rlm_sandbox}
    return {"rlm": "unavailable", "sandbox": app[SETTINGS].rlm_sandbox, "unavailable": f"RLM: {problem}"}
