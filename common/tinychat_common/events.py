"""Typed stream events.

Inside the services a stream is a sequence of these objects; `sse.encode` is the only
place that turns them into bytes. `from_dict` reads them back (rlm-service consuming
chat-service, the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Content:
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"content": self.text}


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of the model's reasoning: shown apart from the answer, never sent back."""

    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"reasoning": self.text}


@dataclass(frozen=True, slots=True)
class Status:
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.text}


@dataclass(frozen=True, slots=True)
class ImageResult:
    data_uri: str
    prompt: str
    text: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"image": self.data_uri, "prompt": self.prompt, "content": self.text}


@dataclass(frozen=True, slots=True)
class RlmStep:
    step: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"rlm": self.step}


@dataclass(frozen=True, slots=True)
class Error:
    message: str
    code: str

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code}


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"done": True, "finish_reason": self.finish_reason, "usage": self.usage}


Event = Content | Reasoning | Status | ImageResult | RlmStep | Error | Done


def from_dict(data: dict[str, Any]) -> Event:
    """Read one decoded SSE payload back into its event type."""
    if data.get("done") is True:
        return Done(data.get("finish_reason") or "stop", data.get("usage"))
    if "error" in data:
        return Error(str(data["error"]), str(data.get("code") or "error"))
    if "image" in data:
        return ImageResult(data["image"], data.get("prompt", ""), data.get("content", ""))
    if "rlm" in data:
        return RlmStep(data["rlm"])
    if "status" in data:
        return Status(str(data["status"]))
    if "content" in data:
        return Content(str(data["content"]))
    if "reasoning" in data:
        return Reasoning(str(data["reasoning"]))
    raise ValueError(f"not a TinyChat event: {sorted(data)}")
