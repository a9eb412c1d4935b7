"""The relay: bytes from the services reach the client unchanged, and every stream ends in
exactly one `done`, whatever the service does."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.fakes.tinychat_service import DONE, FakeService, Script, frame
from tests.gateway.conftest import GatewayFactory
from tests.support.messages import chat_body
from tests.support.net import closed_port_url, server_url
from tests.support.sse import answer_text, assert_ends_with_one_done, decode_events, read_events

pytestmark = pytest.mark.timeout(20)


async def test_chat_answer_streams_through_gateway_and_ends_with_done(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="The answer is forty two."))
    async with gateway.post("/api/chat/stream", json=chat_body("What is it?")) as response:
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        events = await read_events(response)
    assert answer_text(events) == "The answer is forty two."
    assert_ends_with_one_done(events)
    assert events[-1]["finish_reason"] == "stop"
    assert fake_openai.history[-1]["messages"][-1]["content"] == "What is it?"


async def test_relayed_bytes_equal_chat_service_bytes(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI, chat_server: TestServer
) -> None:
    reply = Reply(text="Same bytes both ways: **markdown**, `code`, $x^2$ and ünïcödé ✓.")
    fake_openai.enqueue(reply, reply)
    body = chat_body("Say it", model="fake-model", temperature=0)
    direct_url = server_url(chat_server) + "/v1/chat/stream"
    async with aiohttp.ClientSession() as direct, direct.post(direct_url, json=body) as response:
        assert response.status == 200
        straight = await response.read()
    async with gateway.post("/api/chat/stream", json=body) as response:
        relayed = await response.read()
    assert relayed == straight
    assert "ünïcödé ✓".encode() in relayed


async def test_service_frames_split_across_writes_reach_client_whole(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    first = frame({"status": "RLM iteration 1/20"})
    second = frame({"content": "a long piece " * 50})
    # Cut inside a frame and between the two newlines that end one.
    rlm_service.enqueue(Script(writes=[first[:7], first[7:-1], first[-1:] + second[:30], second[30:], DONE]))
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", json=chat_body("think", rlm=True)) as response:
        raw = await response.read()
    assert raw == first + second + DONE


async def test_downstream_json_error_is_returned_as_is(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI, chat_server: TestServer
) -> None:
    body = chat_body("Hi", model="no-such-model")
    direct_url = server_url(chat_server) + "/v1/chat/stream"
    async with aiohttp.ClientSession() as direct, direct.post(direct_url, json=body) as response:
        direct_status, direct_body = response.status, await response.json()
    async with gateway.post("/api/chat/stream", json=body) as response:
        assert response.status == direct_status
        assert await response.json() == direct_body
    assert 400 <= direct_status < 500
    assert "fake-model" in direct_body["detail"]
    assert fake_openai.history == []


async def test_downstream_busy_keeps_its_retry_after(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    busy = {"error": "busy", "detail": "All 2 RLM slots are in use; try again in a moment."}
    rlm_service.enqueue(Script(status=429, json_body=busy, headers={"Retry-After": "7"}))
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", json=chat_body("x", rlm=True)) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
        assert await response.json() == busy


async def test_downstream_non_json_error_becomes_readable_502(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    image_service.enqueue(Script(status=500, text_body="<html>Internal Server Error</html>"))
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", json=chat_body("/image a cat")) as response:
        assert response.status == 502
        answer = await response.json()
    assert answer["error"] == "bad_gateway"
    assert "image service" in answer["detail"]
    assert "<html>" not in answer["detail"]


@pytest.mark.parametrize(
    ("service", "text", "extra", "name"),
    [
        ("chat_service_url", "Hello", {}, "chat service"),
        ("image_service_url", "/image a red fox", {}, "image service"),
        ("rlm_service_url", "Summarise", {"rlm": True}, "RLM service"),
    ],
)
async def test_unreachable_service_gives_error_event_naming_it_and_done(
    make_gateway: GatewayFactory, service: str, text: str, extra: dict, name: str
) -> None:
    gateway = await make_gateway(**{service: closed_port_url()})
    async with gateway.post("/api/chat/stream", json=chat_body(text, **extra)) as response:
        events = await read_events(response)
    assert events[0]["code"] == "service_unavailable"
    assert f"The {name} is not available" in events[0]["error"]
    assert_ends_with_one_done(events)
    assert events[-1]["finish_reason"] == "error"
    metrics = await (await gateway.get("/metrics")).text()
    assert "tinychat_gateway_downstream_errors_total{" in metrics
    assert 'kind="unreachable"' in metrics


async def test_service_killed_mid_stream_gives_error_and_done(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    rlm_service.enqueue(Script(writes=[frame({"content": "Half an ans"})], then="abort"))
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", json=chat_body("go", rlm=True)) as response:
        events = await read_events(response)
    assert events[0] == {"content": "Half an ans"}
    assert events[1]["code"] == "service_interrupted"
    assert "RLM service stopped in the middle" in events[1]["error"]
    assert_ends_with_one_done(events)


async def test_real_chat_service_killed_mid_stream_gives_error_and_done(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI, chat_server: TestServer
) -> None:
    fake_openai.enqueue(Reply(text="one two three four five six", chunk_delay=0.05))
    async with gateway.post("/api/chat/stream", json=chat_body("count")) as response:
        assert response.status == 200
        first = await response.content.readuntil(b"\n\n")
        assert b'"content"' in first
        # The service dies: every connection it holds is cut at once.
        assert chat_server.runner is not None and chat_server.runner.server is not None
        for connection in chat_server.runner.server.connections:
            assert connection.transport is not None
            connection.transport.abort()
        events = decode_events(first + await response.read())
    assert any(e.get("code") == "service_interrupted" for e in events), events
    assert_ends_with_one_done(events)


async def test_stream_cut_in_the_middle_of_a_frame_never_shows_half_a_frame(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    whole = frame({"status": "Generating image… 40%"})
    cut = frame({"image": "data:image/jpeg;base64," + "A" * 5000})[:2000]
    image_service.enqueue(Script(writes=[whole, cut], then="abort"))
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", json=chat_body("/image a cat")) as response:
        raw = await response.read()
    assert raw.startswith(whole)
    assert b"AAAA" not in raw
    events = decode_events(raw)
    assert [next(iter(e)) for e in events] == ["status", "error", "done"]


async def test_stalled_service_times_out_with_error_and_done(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    image_service.enqueue(Script(writes=[frame({"status": "Generating image… 10%"})], then="stall"))
    gateway = await make_gateway(downstream_idle_timeout=0.3)
    async with gateway.post("/api/chat/stream", json=chat_body("/image slow")) as response:
        events = await read_events(response)
    assert events[1]["code"] == "service_timeout"
    assert "image service stopped responding" in events[1]["error"]
    assert_ends_with_one_done(events)
    await asyncio.wait_for(image_service.disconnected.wait(), 5)


async def test_service_silent_after_its_headers_times_out_with_error_and_done(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    image_service.enqueue(Script(writes=[], then="stall"))
    gateway = await make_gateway(downstream_idle_timeout=0.3)
    async with gateway.post("/api/chat/stream", json=chat_body("/image silent")) as response:
        events = await asyncio.wait_for(read_events(response), 5)
    assert [next(iter(e)) for e in events] == ["error", "done"]
    assert events[0]["code"] == "service_timeout"
    await asyncio.wait_for(image_service.disconnected.wait(), 5)


async def test_a_slow_service_that_keeps_talking_is_not_cut_by_the_idle_limit(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    # Each gap is a tenth of the idle limit (a margin a busy machine cannot eat), and the whole
    # answer still outlasts the limit, so a deadline on the whole relay would cut it.
    steps = [frame({"status": f"step {i}"}) for i in range(12)]
    image_service.enqueue(Script(writes=[*steps, DONE], delay=0.1))
    gateway = await make_gateway(downstream_idle_timeout=1.0)
    async with gateway.post("/api/chat/stream", json=chat_body("/image patient")) as response:
        events = await asyncio.wait_for(read_events(response), 30)
    assert [e.get("status") for e in events[:-1]] == [f"step {i}" for i in range(12)]
    assert events[-1]["finish_reason"] == "stop"
    assert_ends_with_one_done(events)


async def test_client_disconnect_closes_the_chat_service_and_upstream_request(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text=" ".join(["word"] * 200), chunk_delay=0.05))
    response = await gateway.post("/api/chat/stream", json=chat_body("long please"))
    assert response.status == 200
    await response.content.readuntil(b"\n\n")
    response.close()
    # The gateway drops its connection to chat-service, which drops the upstream one.
    await asyncio.wait_for(fake_openai.disconnected.wait(), 5)
    assert fake_openai.disconnects == 1


async def test_client_disconnect_closes_the_service_request(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    rlm_service.enqueue(Script(writes=[frame({"status": "RLM iteration 1/20"})], then="stall"))
    gateway = await make_gateway()
    response = await gateway.post("/api/chat/stream", json=chat_body("go", rlm=True))
    await response.content.readuntil(b"\n\n")
    response.close()
    await asyncio.wait_for(rlm_service.disconnected.wait(), 5)
    metrics = await (await gateway.get("/metrics")).text()
    assert "tinychat_active_streams 0.0" in metrics


async def test_metrics_count_relayed_frames_and_bytes(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="a b c"))
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        raw = await response.read()
    metrics = await (await gateway.get("/metrics")).text()
    frames = raw.count(b"\n\n")
    assert f'tinychat_gateway_relayed_frames_total{{service="chat"}} {float(frames)}' in metrics
    assert f'tinychat_gateway_relayed_bytes_total{{service="chat"}} {float(len(raw))}' in metrics
    assert 'route="/api/chat/stream",status="200"' in metrics
