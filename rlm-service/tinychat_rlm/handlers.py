"""POST /v1/rlm/stream and GET /v1/rlm/config."""

from __future__ import annotations

import logging

from aiohttp import web
from tinychat_common.internal_auth import USER_HEADER
from tinychat_common.slow_clients import reads_own_body
from tinychat_common.streaming import serve_events

from .app_keys import JOBS, SANDBOX_STATUS, SETTINGS
from .documents import read_chat_request
from .engine import job_from_request
from .errors import RlmDisabled, SandboxUnavailable

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
    settings = request.app[SETTINGS]
    if not settings.rlm_enabled:
        raise RlmDisabled()
    problem = await request.app[SANDBOX_STATUS].current_problem()
    if problem is not None:
        raise SandboxUnavailable(f"RLM is unavailable: {problem}")
    # Everything that can be wrong with the request is answered as JSON before a token is taken.
    job = job_from_request(await read_chat_request(request, settings.rlm_max_request_bytes))
    job.user = request.headers.get(USER_HEADER)
    async with request.app[JOBS].admit(job) as run:
        return await serve_events(request, run.events())
