"""What the gateway's handlers share, made once by the app factory and never changed after:
held on the app under `app_keys.GATEWAY`. The client session, opened at startup, has a key of
its own (`app_keys.SESSION`), so nothing here is filled in later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import GatewaySettings
from .metrics import GatewayMetrics
from .passcode import PasscodeGuard
from .ratelimit import SlidingWindow

RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Gateway:
    settings: GatewaySettings
    metrics: GatewayMetrics
    passcode: PasscodeGuard
    version: str
    # Per-client request windows by kind ("chat", "image", "rlm"); a kind with limit 0 is absent.
    rate_limits: dict[str, SlidingWindow] = field(default_factory=dict)
    openapi: dict[str, Any] = field(default_factory=dict)

    def service_url(self, service: str) -> str:
        return {
            "chat": self.settings.chat_service_url,
            "image": self.settings.image_service_url,
            "rlm": self.settings.rlm_service_url,
        }[service]
