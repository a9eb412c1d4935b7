"""Gateway settings, read from the environment (field name = variable name, lower case)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode
from tinychat_common.settings import HttpUrl, ServiceSettings, http_url, secret_from_file

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_HOST_NAMES = ("localhost", "127.0.0.1", "::1", "localhost.localdomain")


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
    # The address users reach TinyChat at (https://chat.example.com): its host is allowed
    # in Host, its origin in Origin.
    public_url: str = ""
    # Host names the gateway answers to; empty = loopback names plus PUBLIC_URL's host;
    # "*" = any (only behind a proxy that checks Host itself).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    rlm_passcode: SecretStr = SecretStr("")
    rlm_passcode_max_failures: int = Field(default=5, gt=0)
    rlm_passcode_window_seconds: float = Field(default=300.0, gt=0)
    # Wrong passcodes from all clients together per window: rotating addresses cannot
    # buy an attacker more guesses than this.
    rlm_passcode_global_max_failures: int = Field(default=50, gt=0)

    # Who may use TinyChat (auth.py): none, password (login page, signed cookie) or
    # header (an authenticating proxy in TRUSTED_PROXIES names the user).
    auth_mode: Literal["none", "password", "header"] = "none"
    auth_password: SecretStr = SecretStr("")
    # Signs the login cookie; comma list for rotation: the first signs, all verify.
    auth_secret: SecretStr = SecretStr("")
    auth_secret_file: str = ""
    auth_session_hours: float = Field(default=168.0, gt=0)
    auth_max_failures: int = Field(default=5, gt=0)
    auth_global_max_failures: int = Field(default=100, gt=0)
    auth_failure_window_seconds: float = Field(default=300.0, gt=0)
    auth_user_header: str = "X-Forwarded-User"

    # Requests per minute per client address; 0 turns the limit off.
    rate_limit_chat: int = Field(default=0, ge=0)
    rate_limit_image: int = Field(default=10, ge=0)
    rate_limit_rlm: int = Field(default=5, ge=0)

    # Open connections one client address may hold (TRUSTED_PROXIES are exempt); 0 = any.
    max_connections_per_client: int = Field(default=32, ge=0)

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

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url(cls, value: object) -> object:
        if isinstance(value, str) and value.strip():
            return http_url(value)
        return "" if value is None else value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        hosts = _comma_list(value)
        if isinstance(hosts, list):
            return [host.lower().strip("[]") for host in hosts]
        return hosts

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

    @model_validator(mode="after")
    def _auth_is_complete(self) -> GatewaySettings:
        self.auth_secret = secret_from_file(self.auth_secret, self.auth_secret_file, "AUTH_SECRET_FILE")
        if self.auth_mode == "password":
            if not self.auth_password.get_secret_value():
                raise ValueError("AUTH_MODE=password needs AUTH_PASSWORD")
            if len(self.auth_secrets[0] if self.auth_secrets else "") < 16:
                raise ValueError(
                    "AUTH_MODE=password needs AUTH_SECRET (16+ random characters, shared by replicas)"
                )
        if self.auth_mode == "header" and not self.trusted_proxies:
            raise ValueError("AUTH_MODE=header needs TRUSTED_PROXIES (the proxy that sets the user header)")
        return self

    @property
    def auth_secrets(self) -> list[str]:
        return [part.strip() for part in self.auth_secret.get_secret_value().split(",") if part.strip()]

    @property
    def body_limit(self) -> int:
        """The largest body read at all; which limit applies is decided once it is parsed."""
        return max(self.max_request_bytes, self.rlm_max_request_bytes)

    @property
    def passcode_required(self) -> bool:
        return bool(self.rlm_passcode.get_secret_value())

    @property
    def public_origin(self) -> str:
        if not self.public_url:
            return ""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def host_names(self) -> frozenset[str] | None:
        """The Host names allowed (lower case, without port); None = any."""
        if "*" in self.allowed_hosts:
            return None
        names = set(self.allowed_hosts) or set(LOOPBACK_HOST_NAMES)
        if self.public_url:
            names.add((urlsplit(self.public_url).hostname or "").lower())
        return frozenset(names)
