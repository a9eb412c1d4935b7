"""Models of the gateway's own public bodies: the ones tinychat_common.models does not
hold because only the gateway speaks them. /api/openapi.json is built from these and from
tinychat_common.models, so the description cannot drift from the validation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RlmValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passcode: str | None = Field(
        default=None, description="The passcode; the X-RLM-Passcode header may carry it instead."
    )


class RlmValidateResponse(BaseModel):
    valid: bool
    passcode_required: bool


class ErrorBody(BaseModel):
    """Every error answered before a stream starts."""

    error: str = Field(description="A stable machine-readable code, e.g. invalid_request.")
    detail: str = Field(description="What went wrong, for a person.")


class ImageConfig(BaseModel):
    enabled: bool
    provider: str | None = None


class RlmConfig(BaseModel):
    enabled: bool
    passcode_required: bool
    max_iterations: int | None = None
    timeout: float | None = None
    sandbox: str | None = None
    reason: str | None = Field(default=None, description="Why RLM is off, in one line.")


class ChatConfig(BaseModel):
    enabled: bool


class TitleResponse(BaseModel):
    title: str = Field(description="A short title for the conversation, from the model.")


class ModelGroup(BaseModel):
    """The models of one endpoint of chat-service (CHAT_ENDPOINTS), for a grouped picker."""

    endpoint: str = Field(description='The endpoint\'s name; "" for the single OPENAI_API_URL one.')
    label: str
    titles: bool = Field(description="Whether /api/chat/title may be asked for these models.")
    models: list[str]


class ConfigResponse(BaseModel):
    version: str
    models: list[str]
    model_groups: list[ModelGroup] = Field(default_factory=list)
    default_model: str | None
    default_temperature: float | None
    max_message_length: int
    max_conversation_history: int | None
    max_request_bytes: int
    rlm_max_request_bytes: int = Field(description="The largest RLM request (with its documents).")
    chat: ChatConfig
    image: ImageConfig
    rlm: RlmConfig


class ServiceHealth(BaseModel):
    status: str = Field(description="ready, not_ready or unreachable.")
    latency_ms: float
    unavailable: str | None = Field(default=None, description="A feature of it that is off, and why.")


class HealthResponse(BaseModel):
    status: str = Field(description="ok when every service is ready, degraded otherwise.")
    version: str
    services: dict[str, ServiceHealth]


class StreamEvent(BaseModel):
    """One `data:` payload of the event stream; exactly one of content, reasoning, status,
    image, rlm, error or done is the event's kind, and `done` is always the last event."""

    content: str | None = None
    reasoning: str | None = Field(
        default=None,
        description="A piece of the model's reasoning (from reasoning_content, reasoning or a "
        "leading <think> block), in order; never part of `content`, and never to be sent back.",
    )
    status: str | None = None
    image: str | None = Field(default=None, description="A data: URI of a generated image.")
    prompt: str | None = None
    rlm: dict[str, Any] | None = Field(default=None, description="One step of an RLM trace.")
    error: str | None = Field(default=None, description="A readable error; `done` follows.")
    code: str | None = None
    done: bool | None = None
    finish_reason: str | None = Field(default=None, description="stop, length, error or cancelled.")
    usage: dict[str, Any] | None = Field(
        default=None,
        description="On `done`: prompt_tokens, completion_tokens, total_tokens as the model API "
        'reported them, or estimated (then with "estimated": true) where it reported none.',
    )
