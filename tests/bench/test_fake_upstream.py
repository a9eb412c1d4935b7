"""The benchmark's fake upstream speaks the real OpenAI streaming wire format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bench.fake_upstream import DELTA, FakeUpstream, Script
from tests.support.sse import read_payloads

pytestmark = pytest.mark.timeout(20)

BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream(Script(chunks=4, interval=0.001))
    port = await fake.start()
    yield fake, f"http://127.0.0.1:{port}"
    await fake.close()


async def test_stream_is_role_deltas_finish_usage_then_done(upstream: tuple[FakeUpstream, str]) -> None:
    _, url = upstream
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=BODY) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        events = await read_payloads(response)

    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m1" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"]["content"] for c in chunks[1:5]]
    assert deltas == [DELTA] * 4
    assert chunks[5]["choices"][0]["finish_reason"] == "stop"
    assert chunks[6]["choices"] == []
    assert chunks[6]["usage"]["completion_tokens"] == 4


async def test_keep_alive_connection_serves_requests_one_after_another(
    upstream: tuple[FakeUpstream, str],
) -> None:
    fake, url = upstream
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):
            async with session.post(url + "/v1/chat/completions", json=BODY) as response:
                assert (await read_payloads(response))[-1] == "[DONE]"
        assert len(fake.connections) == 1
    assert fake.requests == 3


async def test_chunked_request_body_is_read_whole(upstream: tuple[FakeUpstream, str]) -> None:
    _, url = upstream

    async def body_in_pieces() -> AsyncIterator[bytes]:
        payload = json.dumps({**BODY, "model": "chunked-model"}).encode()
        for start in range(0, len(payload), 7):
            yield payload[start : start + 7]

    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", data=body_in_pieces()) as response,
    ):
        events = await read_payloads(response)
    assert json.loads(events[0])["model"] == "chunked-model"


async def test_non_streaming_request_gets_whole_completion(upstream: tuple[FakeUpstream, str]) -> None:
    _, url = upstream
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json={**BODY, "stream": False}) as response,
    ):
        whole = await response.json()
    assert whole["choices"][0]["message"]["content"] == DELTA * 4
    assert whole["usage"]["completion_tokens"] == 4


async def test_models_and_readiness_answer_and_unknown_route_is_404(
    upstream: tuple[FakeUpstream, str],
) -> None:
    _, url = upstream
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/v1/models") as response:
            assert [m["id"] for m in (await response.json())["data"]] == ["bench-model"]
        async with session.get(url + "/readyz") as response:
            assert response.status == 200
        async with session.get(url + "/nowhere") as response:
            assert response.status == 404


async def test_client_hanging_up_mid_stream_is_counted_and_its_timer_stops() -> None:
    fake = FakeUpstream(Script(chunks=1000, interval=0.01))
    port = await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)
            await response.content.readany()
            response.close()
        async with asyncio.timeout(5):
            while fake.disconnects < 1:
                await asyncio.sleep(0.01)
        assert not fake.connections
    finally:
        await fake.close()
