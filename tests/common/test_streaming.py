"""serve_events: whatever the producer does, the stream ends with exactly one `done`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from tinychat_common.errors import TinyChatError, UpstreamTimeout
from tinychat_common.events import Content, Done, Error, Event
from tinychat_common.metrics import METRICS
from tinychat_common.service import base_app
from tinychat_common.settings import ServiceSettings
from tinychat_common.sse import SSEDecoder
from tinychat_common.streaming import serve_events

pytestmark = pytest.mark.timeout(10)


async def answer() -> AsyncIterator[Event]:
    yield Content("a")
    yield [Content("b"), Content("c")]  # type: ignore[misc]


async def answer_with_done() -> AsyncIterator[Event]:
    yield Content("a")
    yield Done("length", {"total_tokens": 1})
    yield Content("never sent")


async def fails_with_tinychat_error() -> AsyncIterator[Event]:
    yield Content("a")
    raise UpstreamTimeout("The model API did not answer in 1 s.")


async def fails_with_a_bug() -> AsyncIterator[Event]:
    yield Content("a")
    raise RuntimeError("secret internals /etc/passwd")


async def yields_error_then_done() -> AsyncIterator[Event]:
    yield [Error("nope", "custom"), Done("error")]  # type: ignore[misc]


async def nothing() -> AsyncIterator[Event]:
    return
    yield


async def stream_of(aiohttp_client, producer: Callable[[], AsyncIterator[Event]]) -> list[dict]:
    app = base_app(ServiceSettings(), "test")

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_events(request, producer())

    app.router.add_get("/s", handler)
    client = await aiohttp_client(app)
    response = await client.get("/s")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    decoder = SSEDecoder()
    payloads = decoder.feed(await response.read()) + decoder.close()
    return [json.loads(p) for p in payloads]


@pytest.mark.parametrize(
    ("producer", "finish_reason"),
    [
        (answer, "stop"),
        (answer_with_done, "length"),
        (fails_with_tinychat_error, "error"),
        (fails_with_a_bug, "error"),
        (yields_error_then_done, "error"),
        (nothing, "stop"),
    ],
)
async def test_every_stream_ends_with_exactly_one_done(aiohttp_client, producer, finish_reason):
    events = await stream_of(aiohttp_client, producer)
    assert [e for e in events if "done" in e] == [events[-1]]
    assert events[-1]["finish_reason"] == finish_reason


async def test_batches_are_sent_in_order(aiohttp_client):
    events = await stream_of(aiohttp_client, answer)
    assert events == [
        {"content": "a"},
        {"content": "b"},
        {"content": "c"},
        {"done": True, "finish_reason": "stop", "usage": None},
    ]


async def test_a_tinychat_error_becomes_its_event(aiohttp_client):
    events = await stream_of(aiohttp_client, fails_with_tinychat_error)
    assert events[-2] == {"error": "The model API did not answer in 1 s.", "code": "upstream_timeout"}


async def test_a_bug_shows_a_generic_error_and_no_internals(aiohttp_client):
    events = await stream_of(aiohttp_client, fails_with_a_bug)
    assert events[-2] == {"error": TinyChatError.default_message, "code": "internal_error"}
    assert "passwd" not in json.dumps(events)


async def test_open_streams_are_counted_in_the_active_streams_gauge(aiohttp_client) -> None:
    app = base_app(ServiceSettings(), "test")
    release = asyncio.Event()

    async def held_open() -> AsyncIterator[Event]:
        yield Content("a")
        await release.wait()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_events(request, held_open())

    app.router.add_get("/s", handler)
    client = await aiohttp_client(app)

    def active() -> float:
        return app[METRICS].active_streams._value.get()

    response = await client.get("/s")
    await response.content.readuntil(b"\n\n")
    assert active() == 1
    release.set()
    await response.read()
    assert active() == 0
