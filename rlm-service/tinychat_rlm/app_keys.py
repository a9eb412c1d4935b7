"""The app-wide objects of rlm-service, each under a typed key (no globals)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from tinychat_common.chatlog import ChatLog
from tinychat_common.limiter import ConcurrencyLimiter

from .config import RlmSettings
from .jobs import Jobs
from .metrics import RlmMetrics
from .sandbox.base import SandboxFactory
from .sandbox_status import SandboxStatus

SETTINGS = web.AppKey("rlm_settings", RlmSettings)
CHAT_SESSION = web.AppKey("rlm_chat_session", aiohttp.ClientSession)
LIMITER = web.AppKey("rlm_limiter", ConcurrencyLimiter)
SANDBOXES = web.AppKey("rlm_sandboxes", SandboxFactory)
SANDBOX_STATUS = web.AppKey("rlm_sandbox_status", SandboxStatus)
CHAT_LOG = web.AppKey("rlm_chat_log", ChatLog)
RLM_METRICS = web.AppKey("rlm_metrics", RlmMetrics)
JOBS = web.AppKey("rlm_jobs", Jobs)
