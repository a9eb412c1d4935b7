"""The app-wide objects of the gateway, each under a typed key (no globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .downstream import JsonCache
from .state import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
# Opened by the app's cleanup_ctx (one ClientSession per app), with the cache that uses it.
SESSION = web.AppKey("gateway_downstream_session", aiohttp.ClientSession)
SERVICE_INFO = web.AppKey("gateway_service_info", JsonCache)
CORS_ORIGINS = web.AppKey("gateway_cors_origins", frozenset[str])
# For the type checker only: the classes live beside the middleware that reads them
# (access.py, auth.py), and those modules import these keys.
if TYPE_CHECKING:
    from .access import AccessRules
    from .auth import Auth

ACCESS_RULES: web.AppKey[AccessRules] = web.AppKey("gateway_access_rules")
AUTH: web.AppKey[Auth] = web.AppKey("gateway_auth")
