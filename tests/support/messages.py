"""Chat messages as the public API takes them."""

from __future__ import annotations

from typing import Any


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


def chat_body(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    """A request body for the chat endpoints: one user message, plus any other fields."""
    return {"messages": [user(text)], **extra}
