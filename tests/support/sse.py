"""Reading TinyChat's event streams in tests: one SSE response → its decoded events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from tinychat_common.sse import SSEDecoder

Event = dict[str, Any]


def decode_events(raw: bytes) -> list[Event]:
    """Every event in a whole SSE body, JSON-decoded."""
    decoder = SSEDecoder()
    return [json.loads(p) for p in decoder.feed(raw) + decoder.close()]


async def read_payloads(response: ClientResponse) -> list[str]:
    """The `data:` payload of every event, as text, until the server ends the stream."""
    decoder = SSEDecoder()
    payloads: list[str] = []
    async for chunk in response.content.iter_any():
        payloads.extend(decoder.feed(chunk))
    return payloads + decoder.close()


def assert_is_event_stream(response: ClientResponse) -> None:
    assert response.headers["Content-Type"].startswith("text/event-stream"), response.headers


async def read_events(response: ClientResponse) -> list[Event]:
    """Every event of an SSE response, decoded, until the server ends it."""
    assert response.status == 200, await response.text()
    assert_is_event_stream(response)
    return [json.loads(p) for p in await read_payloads(response)]


def answer_text(events: list[Event]) -> str:
    """The answer the user sees: every `content` piece, in order."""
    return "".join(e["content"] for e in events if "content" in e and "done" not in e)


def is_code_step(event: Event) -> bool:
    """An RLM step that runs code (the moment a sandbox is busy)."""
    return isinstance(event.get("rlm"), dict) and event["rlm"].get("kind") == "code"


class EventReader:
    """Reads one SSE response event by event, never longer than `seconds` per call: for
    tests that act in the middle of a stream (kill a dependency, leave, count tokens)."""

    def __init__(self, response: ClientResponse, seconds: float) -> None:
        assert response.status == 200, f"expected a stream, got {response.status}"
        assert_is_event_stream(response)
        self.response = response
        self.seconds = seconds
        self.events: list[Event] = []
        self._decoder = SSEDecoder()
        self._ended = False

    async def until(self, predicate: Callable[[Event], bool]) -> Event:
        """Read until an event matches; fails if the stream ends first."""
        for event in self.events:
            if predicate(event):
                return event
        async with asyncio.timeout(self.seconds):
            while not self._ended:
                for event in await self._read_some():
                    if predicate(event):
                        return event
        pytest.fail(f"the stream ended without the expected event: {self.events}")

    async def to_the_end(self) -> list[Event]:
        """The rest of the stream; a stream still open after `seconds` fails the test."""
        async with asyncio.timeout(self.seconds):
            while not self._ended:
                await self._read_some()
        return self.events

    async def _read_some(self) -> list[Event]:
        chunk = await self.response.content.readany()
        if not chunk:
            self._ended = True
            payloads = self._decoder.close()
        else:
            payloads = self._decoder.feed(chunk)
        new = [json.loads(p) for p in payloads]
        self.events.extend(new)
        return new


def assert_ends_with_one_done(events: list[Event]) -> Event:
    """The stream's last event is its only `done`; returns it."""
    assert events, "the stream was empty"
    dones = [e for e in events if e.get("done") is True]
    assert len(dones) == 1 and events[-1] is dones[0], events[-3:]
    return dones[0]
