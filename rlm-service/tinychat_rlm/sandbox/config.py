"""The sandbox's settings, read from the environment like every other service setting.

rlm-service's settings class includes these by inheritance:
`class RlmSettings(ServiceSettings, SandboxSettings)`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """'512m' → 536870912: the size format docker's --memory accepts."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("must be a size such as 512m, 1g or 268435456")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None)

    # Where LLM-written code runs: "process" (a locked-down child process), "docker", or
    # "pool" (the runners of the `sandbox` service; the default in compose and Kubernetes).
    rlm_sandbox: Literal["process", "docker", "pool"] = "process"
    rlm_sandbox_image: str = "tinychat-sandbox:latest"
    # The docker backend's OCI runtime: "" for docker's default, "runsc" for gVisor.
    rlm_sandbox_runtime: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")
    rlm_sandbox_memory: str = "512m"
    rlm_sandbox_cpus: float = Field(default=1.0, gt=0, le=64)
    rlm_sandbox_pids: int = Field(default=64, ge=8, le=4096)
    # Time a cell's own code may run; waiting for llm_query answers does not count.
    rlm_cell_timeout: float = Field(default=30.0, gt=0)
    # Characters of stdout (and of stderr) a cell keeps; the rest is cut with a marker.
    rlm_output_limit: int = Field(default=20_000, ge=1_000, le=10_000_000)

    # pool: the runners, as host:port (comma-separated for several); every address a name
    # resolves to is a runner. How long a job waits for a free runner before it fails.
    rlm_sandbox_pool: str = "sandbox:8010"
    rlm_sandbox_pool_wait: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("rlm_sandbox_pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        from .pool import parse_endpoints

        parse_endpoints(value)  # raises ValueError saying what a runner address looks like
        return value.strip()

    @field_validator("rlm_sandbox", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("rlm_sandbox_memory")
    @classmethod
    def _size(cls, value: str) -> str:
        if parse_size(value) < 64 * 1024**2:
            raise ValueError("must be at least 64m")
        return value.strip().lower()

    @field_validator("rlm_sandbox_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a docker image, such as tinychat-sandbox:latest")
        return value.strip()

    @property
    def sandbox_memory_bytes(self) -> int:
        return parse_size(self.rlm_sandbox_memory)
