"""Demo model settings: DEMO_PORT (8010), DEMO_HOST, DEMO_CHUNK_DELAY_MS (15)."""

from __future__ import annotations

from pydantic import Field, model_validator
from tinychat_common.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    demo_host: str = "127.0.0.1"
    demo_port: int = Field(default=8010, ge=0, le=65535)
    # About 60 words a second: fast, yet slow enough to watch the answer arrive.
    demo_chunk_delay_ms: float = Field(default=15.0, ge=0)

    @model_validator(mode="after")
    def _own_address(self) -> DemoSettings:
        # HOST and PORT belong to the gateway when `make run` starts everything together.
        self.host = self.demo_host
        self.port = self.demo_port
        return self
