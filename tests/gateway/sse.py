"""Reading the gateway's event streams in tests."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientResponse
from tinychat_common.sse import SSEDecoder


async def read_raw(response: ClientResponse) -> bytes:
    assert response.status == 200, await response.text()
    return await response.read()


def decode_events(raw: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    payloads = decoder.feed(raw) + decoder.close()
    return [json.loads(p) for p in payloads]


async def read_events(response: ClientResponse) -> list[dict[str, Any]]:
    """Every event of an SSE response, decoded, until the server ends it."""
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return decode_events(await read_raw(response))


def assert_ends_with_one_done(events: list[dict[str, Any]]) -> None:
    assert events, "the stream was empty"
    assert events[-1].get("done") is True, events[-1]
    assert sum(1 for e in events if e.get("done") is True) == 1, events


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if "content" in e and "done" not in e)


def chat_body(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}
