"""rlm-service settings, read from the environment (field name = variable name, lower case)."""

from __future__ import annotations

from pydantic import Field
from tinychat_common.settings import HttpUrl, LogPath, RedisSettings, RedisUrl, ServiceSettings

from .sandbox.config import SandboxSettings


class RlmSettings(ServiceSettings, SandboxSettings, RedisSettings):
    """ServiceSettings, the sandbox's own settings (RLM_SANDBOX, RLM_SANDBOX_IMAGE,
    RLM_CELL_TIMEOUT, …; see sandbox/config.py) and the RLM engine's."""

    port: int = 8003

    rlm_enabled: bool = True
    # Every LM call (root model and llm_query) goes to chat-service; rlm-service holds no key.
    chat_service_url: HttpUrl = "http://127.0.0.1:8001"
    chat_service_timeout: float = Field(default=120.0, gt=0)

    rlm_timeout: float = Field(default=60.0, gt=0)
    rlm_max_iterations: int = Field(default=20, ge=1, le=200)
    max_concurrent_rlm: int = Field(default=3, ge=1)

    # With REDIS_URL, MAX_CONCURRENT_RLM holds across every replica (leased tokens).
    redis_url: RedisUrl = ""
    rlm_token_lease_seconds: float = Field(default=15.0, gt=0)

    # Sub-calls: prompts longer than this are refused inside the REPL, before any request;
    # keep it at or below chat-service's MAX_MESSAGE_LENGTH.
    rlm_max_subcall_chars: int = Field(default=100_000, gt=0)
    rlm_subcall_concurrency: int = Field(default=4, ge=1, le=64)
    rlm_max_subcalls: int = Field(default=200, ge=1)

    # Recursion: levels of RLM (1 = the root only; rlm_query is then a plain llm_query).
    rlm_max_depth: int = Field(default=1, ge=1, le=4)
    # Per job, over every level: tokens (prompt + completion) and seconds; 0 = no limit.
    # Spent, a job answers with a best effort marked as such (RLM_TIMEOUT still ends it hard).
    rlm_budget_tokens: int = Field(default=0, ge=0)
    rlm_budget_seconds: float = Field(default=0.0, ge=0)

    # What the root model sees of a cell's output, and of the question, per turn.
    rlm_output_chars: int = Field(default=6000, ge=200)
    # The largest request body (the conversation that becomes `context`).
    rlm_max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)

    chat_log: LogPath = ""
