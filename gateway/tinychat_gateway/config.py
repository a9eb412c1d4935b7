"""Gateway settings, read from the environment (field name = variable name, lower case)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode
from tinychat_common.settings import HttpUrl, ServiceSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _repo_web_dir() -> Path:
    # gateway/tinychat_gateway/config.py -> the repository's web/ folder; a container image
    # that copies the assets elsewhere sets WEB_DIR instead.
    return Path(__file__).resolve().parents[2] / "web"


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GatewaySettings(ServiceSettings):
    port: int = 8000

    chat_service_url: HttpUrl = "http://127.0.0.1:8001"
    image_service_url: HttpUrl = "http://127.0.0.1:8002"
    rlm_service_url: HttpUrl = "http://127.0.0.1:8003"
    web_dir: Path = Field(default_factory=_repo_web_dir)

    max_message_length: int = Field(default=262144, gt=0)
    # Vision images travel base64-encoded inside the JSON body, hence the generous default.
    max_request_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    # An RLM request carries its documents (the job's context): up to this size.
    rlm_max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)

    rlm_passcode: SecretStr = SecretStr("")
    rlm_passcode_max_failures: int = Field(default=5, gt=0)
    rlm_passcode_window_seconds: float = Field(default=300.0, gt=0)

    # Requests per minute per client address; 0 turns the limit off.
    rate_limit_chat: int = Field(default=0, ge=0)
    rate_limit_image: int = Field(default=10, ge=0)
    rate_limit_rlm: int = Field(default=5, ge=0)

    downstream_connect_timeout: float = Field(default=5.0, gt=0)
    # The services send a keepalive at least every KEEPALIVE_SECONDS, so silence this long
    # means the service is stuck.
    downstream_idle_timeout: float = Field(default=120.0, gt=0)
    config_cache_seconds: float = Field(default=10.0, ge=0)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        origins = _comma_list(value)
        for origin in origins if isinstance(origins, list) else []:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"{origin!r} is not an origin such as https://chat.example.com")
        return [o.rstrip("/") for o in origins] if isinstance(origins, list) else origins

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        items = _comma_list(value)
        if not isinstance(items, list):
            return items
        try:
            return [ipaddress.ip_network(item, strict=False) for item in items]
        except ValueError as exc:
            raise ValueError(f"expects comma-separated CIDRs such as 10.0.0.0/8 ({exc})") from None

    @property
    def body_limit(self) -> int:
        """The largest body read at all; which limit applies is decided once it is parsed."""
        return max(self.max_request_bytes, self.rlm_max_request_bytes)

    @property
    def passcode_required(self) -> bool:
        return bool(self.rlm_passcode.get_secret_value())
