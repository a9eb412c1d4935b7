"""Faults on the chat path (gateway → chat-service → LLM API): each ends within the bound
in one readable `error` event and `done`, and leaves no task, connection or stream behind.

The gateway always runs in this process (so its tasks can be counted); chat-service is a
real subprocess where the fault is its death, and in-process otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tinychat_chat.app import create_app as create_chat_app
from tinychat_chat.config import ChatSettings
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.chat_service import chat_settings_for
from tests.support.net import closed_port_url, server_url
from tests.support.sse import EventReader

from .stack import (
    FAULT_BOUND_SECONDS,
    ServiceProcess,
    assert_no_new_tasks,
    assert_readable_error_then_done,
    in_process,
    task_snapshot,
    wait_event,
)

LONG_ANSWER = Reply(chunks=[f"word{n} " for n in range(400)], chunk_delay=0.02)


def chat_body(text: str = "Tell me a long story.") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def gateway_settings(chat_url: str) -> GatewaySettings:
    return GatewaySettings(
        chat_service_url=chat_url,
        image_service_url=closed_port_url(),
        rlm_service_url=closed_port_url(),
        config_cache_seconds=0,
        downstream_connect_timeout=2.0,
    )


API_KEY = "sk-fault-secret"


def chat_settings(fake: FakeOpenAI, **overrides: Any) -> ChatSettings:
    return chat_settings_for(fake, openai_api_key=API_KEY, available_models="fake-model", **overrides)


def chat_env(fake: FakeOpenAI) -> dict[str, str]:
    return {
        "OPENAI_API_URL": fake.url,
        "OPENAI_API_KEY": API_KEY,
        "DEFAULT_MODEL": "fake-model",
        "AVAILABLE_MODELS": "fake-model",
    }


@pytest.fixture
async def chat_process(fake_openai: FakeOpenAI) -> AsyncIterator[ServiceProcess]:
    async with ServiceProcess("tinychat_chat", chat_env(fake_openai)) as process:
        yield process


async def relayed_streams(gateway: TestClient) -> float:
    async with gateway.get("/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("tinychat_gateway_active_streams") or line.startswith("tinychat_active_streams"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_chat_service_killed_mid_stream_ends_with_error_and_done(
    fake_openai: FakeOpenAI, chat_process: ServiceProcess
) -> None:
    fake_openai.enqueue(LONG_ANSWER)
    async with in_process(create_gateway_app(gateway_settings(chat_process.url))) as gateway:
        before = task_snapshot()
        async with gateway.post("/api/chat/stream", json=chat_body()) as response:
            reader = EventReader(response, FAULT_BOUND_SECONDS)
            await reader.until(lambda e: "content" in e)
            await chat_process.kill()
            events = await reader.to_the_end()
        assert_readable_error_then_done(events, "chat")
        assert any("content" in e for e in events[:-2]), "the answer so far was lost"
        # The dead service's connection to the LLM API is gone too, not left streaming.
        await wait_event(fake_openai.disconnected, "the LLM API saw chat-service's connection close")
        await assert_no_new_tasks(before)
        assert await relayed_streams(gateway) == 0


async def test_chat_service_down_before_request_ends_with_error_and_done(fake_openai: FakeOpenAI) -> None:
    async with in_process(create_gateway_app(gateway_settings(closed_port_url()))) as gateway:
        before = task_snapshot()
        async with gateway.post("/api/chat/stream", json=chat_body()) as response:
            events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
        error = assert_readable_error_then_done(events, "chat")
        assert "127.0.0.1" not in error["error"], "internal addresses leak to the client"
        assert fake_openai.history == []
        await assert_no_new_tasks(before)


async def test_chat_service_back_after_being_down_serves_again_without_gateway_restart(
    fake_openai: FakeOpenAI,
) -> None:
    chat = ServiceProcess("tinychat_chat", chat_env(fake_openai))
    async with in_process(create_gateway_app(gateway_settings(chat.url))) as gateway:
        async with gateway.post("/api/chat/stream", json=chat_body()) as response:
            assert_readable_error_then_done(
                await EventReader(response, FAULT_BOUND_SECONDS).to_the_end(), "chat"
            )
        async with chat:
            fake_openai.enqueue(Reply(text="Back again."))
            async with gateway.post("/api/chat/stream", json=chat_body()) as response:
                events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
    assert "".join(e.get("content", "") for e in events if "done" not in e) == "Back again."
    assert events[-1] == {"done": True, "finish_reason": "stop", "usage": events[-1]["usage"]}


@pytest.fixture
async def chat_and_gateway(fake_openai: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    overrides = getattr(request, "param", {})
    async with (
        in_process(create_chat_app(chat_settings(fake_openai, **overrides))) as chat,
        in_process(create_gateway_app(gateway_settings(server_url(chat.server)))) as gateway,
    ):
        yield chat, gateway


@pytest.mark.parametrize("chat_and_gateway", [{"upstream_idle_timeout": 0.5}], indirect=True)
async def test_upstream_stall_mid_stream_ends_with_error_and_done(
    fake_openai: FakeOpenAI, chat_and_gateway: Any
) -> None:
    _chat, gateway = chat_and_gateway
    fake_openai.enqueue(Reply(chunks=["One", " two", " three", " four"], stall_after=2))
    before = task_snapshot()
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
    assert_readable_error_then_done(events)
    assert "".join(e["content"] for e in events if "content" in e) == "One two"
    # chat-service hung up on the stalled API instead of keeping the connection.
    await wait_event(fake_openai.disconnected, "the stalled LLM API saw the connection close")
    await assert_no_new_tasks(before)


@pytest.mark.parametrize("chat_and_gateway", [{"upstream_first_byte_timeout": 0.5}], indirect=True)
async def test_upstream_silent_before_first_byte_ends_with_error_and_done(
    fake_openai: FakeOpenAI, chat_and_gateway: Any
) -> None:
    _chat, gateway = chat_and_gateway
    fake_openai.enqueue(Reply(first_byte_delay=30))
    before = task_snapshot()
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
    assert_readable_error_then_done(events)
    await assert_no_new_tasks(before)


GARBAGE = {
    "json_that_is_not_json": [b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n', b"data: {oops\n\n"],
    "binary_noise": [b"\x00\xff\xfe\x81garbage\x00\n\n\xc3\x28 \x9f\n\n"],
    "html_error_page": [b"<html><body><h1>502 Bad Gateway</h1></body></html>"],
    "wrong_shape": [b'data: {"choices": "not a list"}\n\n', b"data: [1, 2, 3]\n\n"],
    "endless_line_without_newline": [b"data: " + b"x" * 65536] * 40,
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
async def test_upstream_garbage_ends_with_error_and_done(
    fake_openai: FakeOpenAI, chat_and_gateway: Any, garbage: list[bytes]
) -> None:
    _chat, gateway = chat_and_gateway
    fake_openai.enqueue(Reply(raw=garbage))
    before = task_snapshot()
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
    assert_readable_error_then_done(events)
    await assert_no_new_tasks(before)
    # The next request is not poisoned by the last one.
    fake_openai.enqueue(Reply(text="Fine now."))
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
    assert events[-1]["finish_reason"] == "stop", events


@pytest.mark.parametrize("chat_and_gateway", [{"upstream_idle_timeout": 0.5}], indirect=True)
async def test_client_leaving_a_stalled_stream_closes_the_upstream(
    fake_openai: FakeOpenAI, chat_and_gateway: Any
) -> None:
    _chat, gateway = chat_and_gateway
    fake_openai.enqueue(Reply(chunks=["a", "b", "c"], stall_after=1))
    before = task_snapshot()
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        await EventReader(response, FAULT_BOUND_SECONDS).until(lambda e: "content" in e)
    await wait_event(fake_openai.disconnected, "the LLM API saw the cancelled request close")
    await assert_no_new_tasks(before)
