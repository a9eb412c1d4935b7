"""The app-wide objects of the gateway, each under a typed key (no globals)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .downstream import JsonCache
from .state import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
# Opened by the app's cleanup_ctx (one ClientSession per app), with the cache that uses it.
SESSION = web.AppKey("gateway_downstream_session", aiohttp.ClientSession)
SERVICE_INFO = web.AppKey("gateway_service_info", JsonCache)
CORS_ORIGINS = web.AppKey("gateway_cors_origins", frozenset[str])
# Named, not imported: the classes live beside the middleware that reads them (access.py,
# auth.py), and those modules import these keys.
ACCESS_RULES = web.AppKey("gateway_access_rules", "AccessRules")
AUTH = web.AppKey("gateway_auth", "Auth")
