"""From a chat request to what the API is sent: limits, history trimming, vision parts.

Everything here runs before a stream starts, so every problem is a JSON 4xx.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from tinychat_common.errors import MessageTooLong
from tinychat_common.models import ChatRequest, Message

from .endpoint_config import DEFAULT_QUIRKS, ModelQuirks
from .errors import ImageTooLarge, InvalidImage
from .reasoning import strip_leading_think

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Decoding megabytes of base64 takes milliseconds: do it in a thread beyond this size.
_DECODE_IN_THREAD_CHARS = 64 * 1024


class InternalChatRequest(ChatRequest):
    """The public request plus what rlm-service may ask for. The gateway's public model
    forbids these fields, so only internal callers can send them."""

    stop: list[str] | str | None = Field(default=None, description="Up to 4 stop sequences.")

    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in stops if s] or None


@dataclass(frozen=True)
class Limits:
    max_message_length: int
    max_conversation_history: int
    max_image_bytes: int


def check_message_lengths(messages: list[Message], max_length: int) -> None:
    for number, message in enumerate(messages, start=1):
        if len(message.content) > max_length:
            raise MessageTooLong(
                f"Message {number} has {len(message.content):,} characters; "
                f"the limit is {max_length:,}. Shorten it or attach it as a file."
            )


def trim_history(messages: list[Message], max_history: int) -> list[Message]:
    """Keep every system message and the newest others, at most `max_history` in all
    (the newest message is always kept). Order is preserved."""
    if len(messages) <= max_history:
        return list(messages)
    system_count = sum(1 for m in messages if m.role == "system")
    room = max(1, max_history - system_count)
    kept: list[Message] = []
    for message in reversed(messages):
        if message.role == "system":
            kept.append(message)
        elif room > 0:
            kept.append(message)
            room -= 1
    kept.reverse()
    return kept


def decode_image(image: str, image_type: str | None, max_bytes: int) -> tuple[str, str]:
    """Validate an attached image; returns (mime type, base64 payload) for the data URI."""
    declared = (image_type or "").strip().lower()
    payload = image.strip()
    if payload.startswith("data:"):
        header, _, payload = payload.partition(",")
        declared = declared or header[5:].split(";")[0].lower()
    if declared == "image/jpg":
        declared = "image/jpeg"
    if declared and declared not in IMAGE_TYPES:
        raise InvalidImage(f"Images of type {declared} are not supported; use {', '.join(IMAGE_TYPES)}.")
    # Base64 is 4 characters per 3 bytes: refuse a huge image before decoding it.
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise ImageTooLarge(_too_large(len(payload) * 3 // 4, max_bytes))
    payload = "".join(payload.split())  # line-wrapped base64 is still base64
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("The attached image is not valid base64.") from None
    if len(data) > max_bytes:
        raise ImageTooLarge(_too_large(len(data), max_bytes))
    sniffed = sniff_image_type(data)
    if sniffed is None:
        raise InvalidImage(f"The attached file is not a {', '.join(IMAGE_TYPES)} image.")
    # The bytes decide: a PNG labelled image/jpeg is still a PNG to the model.
    return sniffed, payload


def sniff_image_type(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _too_large(size: int, max_bytes: int) -> str:
    return f"The attached image is {size / 1024**2:.1f} MB; the limit is {max_bytes / 1024**2:g} MB."


async def to_openai_message(message: Message, max_image_bytes: int) -> dict[str, Any]:
    if message.role == "assistant":
        # An earlier answer's reasoning is never sent back, even if its text still holds it.
        return {"role": "assistant", "content": strip_leading_think(message.content)}
    if not message.image or message.role != "user":
        # Only user turns may carry images upstream; an earlier generated picture stays text.
        return {"role": message.role, "content": message.content}
    if len(message.image) > _DECODE_IN_THREAD_CHARS:
        mime, payload = await asyncio.to_thread(
            decode_image, message.image, message.image_type, max_image_bytes
        )
    else:
        mime, payload = decode_image(message.image, message.image_type, max_image_bytes)
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{payload}"}})
    return {"role": "user", "content": parts}


async def prepare_messages(
    messages: list[Message], limits: Limits
) -> tuple[list[Message], list[dict[str, Any]]]:
    """Check limits, trim, convert: (the messages kept, their OpenAI form)."""
    check_message_lengths(messages, limits.max_message_length)
    kept = trim_history(messages, limits.max_conversation_history)
    converted = [await to_openai_message(m, limits.max_image_bytes) for m in kept]
    return kept, converted


def upstream_payload(
    request: InternalChatRequest,
    model: str,
    temperature: float,
    messages: list[dict[str, Any]],
    quirks: ModelQuirks = DEFAULT_QUIRKS,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if quirks.temperature:
        payload["temperature"] = temperature
    stops = request.stop_list()
    if stops:
        payload["stop"] = stops
    if request.max_tokens is not None:
        payload[quirks.max_tokens_param] = request.max_tokens
    return payload
