"""Settings: one pydantic-settings class per service, read from the environment.

Field names are the variable names in lower case. A bad value stops the service at start
with one line naming the variable and what it accepts.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None)

    host: str = "0.0.0.0"
    port: int = 8000
    enable_debug_logs: bool = False
    shutdown_grace_seconds: float = 20.0
    keepalive_seconds: float = 15.0


S = TypeVar("S", bound=ServiceSettings)


def describe_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        variable = str(err["loc"][0]).upper() if err["loc"] else "settings"
        given = err.get("input")
        shown = "" if isinstance(given, dict) else f"={given!r}"
        lines.append(f"configuration error: {variable}{shown}: {err['msg']}")
    return lines


def load_settings(cls: type[S], **overrides: object) -> S:
    """Read `cls` from the environment, or exit with one line per bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(line, file=sys.stderr)
        raise SystemExit(2) from None
