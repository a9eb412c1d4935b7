"""Settings: one pydantic-settings class per service, read from the environment.

Field names are the variable names in lower case. A bad value stops the service at start
with one line naming the variable and what it accepts.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .chatlog import check_log_path


def http_url(value: str) -> str:
    """An http(s) URL with a host, without a trailing slash."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:8001 or https://api.openai.com/v1")
    return value


def redis_url(value: str) -> str:
    value = value.strip()
    if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be empty or a Redis URL such as redis://redis:6379/0")
    return value


# Field types for settings that every service validates the same way.
HttpUrl = Annotated[str, AfterValidator(http_url)]
RedisUrl = Annotated[str, AfterValidator(redis_url)]
LogPath = Annotated[str, AfterValidator(lambda value: check_log_path(value.strip()))]


def secret_from_file(value: SecretStr, path: str, variable: str) -> SecretStr:
    """`value`, or when it is empty the contents of the file `path` (a mounted Secret)."""
    path = path.strip()
    if not path or value.get_secret_value():
        return value
    try:
        with open(path, encoding="utf-8") as handle:
            return SecretStr(handle.read().strip())
    except OSError as exc:
        raise ValueError(f"{variable}={path!r} cannot be read: {exc.strerror}") from None


class RedisSettings(BaseSettings):
    """For the services that share a Redis: its URL and the password it requires."""

    redis_url: RedisUrl = ""
    redis_password: SecretStr = SecretStr("")
    redis_password_file: str = ""

    @model_validator(mode="after")
    def _password_from_file(self) -> RedisSettings:
        self.redis_password = secret_from_file(
            self.redis_password, self.redis_password_file, "REDIS_PASSWORD_FILE"
        )
        return self


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None)

    host: str = "0.0.0.0"
    port: int = 8000
    enable_debug_logs: bool = False
    shutdown_grace_seconds: float = 20.0
    keepalive_seconds: float = 15.0
    # The bearer token the internal APIs require and their callers send (internal_auth.py);
    # INTERNAL_TOKEN_FILE names a file holding it (a Kubernetes Secret, a compose volume).
    internal_token: SecretStr = SecretStr("")
    internal_token_file: str = ""
    # Slow clients (slow_clients.py): a request head, and a request body, must arrive
    # within these many seconds or the connection gets 408 and is closed; 0 = no limit.
    request_header_timeout: float = Field(default=30.0, ge=0)
    request_body_timeout: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _token_from_file(self) -> ServiceSettings:
        self.internal_token = secret_from_file(
            self.internal_token, self.internal_token_file, "INTERNAL_TOKEN_FILE"
        )
        return self

    @property
    def bearer_token(self) -> str:
        return self.internal_token.get_secret_value().strip()


S = TypeVar("S", bound=ServiceSettings)


def describe_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        variable = str(err["loc"][0]).upper() if err["loc"] else "settings"
        given = err.get("input")
        shown = "" if isinstance(given, dict) else f"={given!r}"
        lines.append(f"configuration error: {variable}{shown}: {err['msg']}")
    return lines


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Read `cls` from the environment, or exit with one line per bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(line, file=sys.stderr)
        raise SystemExit(2) from None
