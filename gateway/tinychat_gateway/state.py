"""What the gateway's handlers share, held on the app under one AppKey (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .config import GatewaySettings
from .downstream import JsonCache
from .metrics import GatewayMetrics
from .passcode import PasscodeGuard
from .ratelimit import SlidingWindow

RATE_WINDOW_SECONDS = 60.0


@dataclass
class Gateway:
    settings: GatewaySettings
    metrics: GatewayMetrics
    passcode: PasscodeGuard
    version: str
    # Per-client request windows by kind ("chat", "image", "rlm"); a kind with limit 0 is absent.
    rate_limits: dict[str, SlidingWindow] = field(default_factory=dict)
    openapi: dict[str, Any] = field(default_factory=dict)
    # Opened by the app's cleanup_ctx (one ClientSession per app).
    session: aiohttp.ClientSession | None = None
    service_info: JsonCache | None = None

    def service_url(self, service: str) -> str:
        return {
            "chat": self.settings.chat_service_url,
            "image": self.settings.image_service_url,
            "rlm": self.settings.rlm_service_url,
        }[service]

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None, "the app's client session is opened at startup"
        return self.session

    @property
    def info(self) -> JsonCache:
        assert self.service_info is not None, "opened at startup with the session"
        return self.service_info


GATEWAY = web.AppKey("gateway", Gateway)
SESSION = web.AppKey("gateway_downstream_session", aiohttp.ClientSession)
