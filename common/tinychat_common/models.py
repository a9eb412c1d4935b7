"""The public request models, shared by the gateway (which validates first) and the
services (which validate again: each one trusts nothing it did not check itself).

The OpenAPI description of the public API is derived from these same models. They are
strict: a value must have the JSON type the description gives (`"rlm": "yes"` or
`"temperature": false` is refused, not coerced).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Role = Literal["user", "assistant", "system"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Role
    content: str = ""
    image: str | None = Field(default=None, description="Base64 image data, without a data: prefix.")
    image_type: str | None = Field(default=None, description="The image's MIME type, e.g. image/png.")


class Document(BaseModel):
    """An attached document: with `rlm: true` the job's `context` is the list of them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=255, description="The file name, as the user sees it.")
    text: str = Field(description="The document's text (extracted from a PDF by the browser).")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    messages: list[Message] = Field(min_length=1)
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Longest answer, in tokens (the conversation's setting).",
    )
    rlm: bool = False
    show_rlm_thinking: bool = True
    documents: list[Document] | None = Field(
        default=None,
        description=(
            "Only with `rlm: true`: the job's `context` becomes this list of documents, "
            "each a str with a `.name` (see the README's RLM over documents)."
        ),
    )
    rlm_passcode: str | None = Field(
        default=None, description="Deprecated: send the X-RLM-Passcode header instead."
    )


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1)


def readable_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
