"""Bad requests get a readable 4xx JSON error before any stream starts, and reach no service."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.tinychat_service import FakeService
from tests.gateway.conftest import GatewayFactory
from tests.support.messages import chat_body

pytestmark = pytest.mark.timeout(20)


async def post_raw(gateway: aiohttp.ClientSession, data: bytes | str) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    async with gateway.post("/api/chat/stream", data=data, headers=headers) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ('{"messages": [{"role": "user", "content": "hi"}], "stream": true}', "invalid_request", "stream"),
        (
            '{"messages": [{"role": "user", "content": "hi", "name": "x"}]}',
            "invalid_request",
            "messages.0.name",
        ),
        ('{"messages": [{"role": "user", "content": "hi"}', "invalid_json", "not valid JSON"),
        ("", "invalid_json", "not valid JSON"),
        ('["not", "an", "object"]', "invalid_request", "JSON object"),
        ('{"messages": []}', "invalid_request", "messages"),
        ('{"messages": [{"role": "robot", "content": "hi"}]}', "invalid_request", "role"),
        ('{"messages": [{"role": "user", "content": "hi"}], "temperature": 2.5}', "invalid_request", "2"),
        ('{"messages": [{"role": "user", "content": "hi"}], "temperature": -0.1}', "invalid_request", "0"),
        ('{"messages": [{"role": "user", "content": "hi"}], "rlm": "perhaps"}', "invalid_request", "rlm"),
    ],
)
async def test_invalid_chat_request_is_a_readable_400(
    gateway: aiohttp.ClientSession,
    fake_openai: FakeOpenAI,
    rlm_service: FakeService,
    body: str,
    code: str,
    says: str,
) -> None:
    status, answer = await post_raw(gateway, body)
    assert status == 400
    assert answer["error"] == code
    assert says in answer["detail"]
    assert fake_openai.history == [] and rlm_service.history == []


async def test_temperature_zero_is_valid_and_reaches_upstream_as_zero(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    async with gateway.post("/api/chat/stream", json=chat_body("hi", temperature=0)) as response:
        assert response.status == 200
        await response.read()
    assert fake_openai.history[-1]["temperature"] == 0


async def test_body_over_the_size_limit_is_413(make_gateway: GatewayFactory, fake_openai: FakeOpenAI) -> None:
    gateway = await make_gateway(max_request_bytes=10_000)
    body = chat_body("x" * 20_000)
    async with gateway.post("/api/chat/stream", json=body) as response:
        assert response.status == 413
        answer = await response.json()
    assert answer["error"] == "payload_too_large"
    assert "10000-byte limit" in answer["detail"]
    assert fake_openai.history == []


async def test_large_vision_body_under_the_limit_is_forwarded_whole(
    gateway: aiohttp.ClientSession, fake_openai: FakeOpenAI
) -> None:
    # A PNG signature and enough bytes for the body to be validated off the event loop.
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(300_000)).decode()
    body = {
        "messages": [{"role": "user", "content": "what is this?", "image": image, "image_type": "image/png"}]
    }
    async with gateway.post("/api/chat/stream", json=body) as response:
        assert response.status == 200, await response.text()
        await response.read()
    parts = fake_openai.history[-1]["messages"][-1]["content"]
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}} in parts


async def test_image_prompt_over_max_message_length_is_413(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    gateway = await make_gateway(max_message_length=100)
    async with gateway.post("/api/chat/stream", json=chat_body("/image " + "p" * 101)) as response:
        assert response.status == 413
        answer = await response.json()
    assert answer["error"] == "message_too_long"
    assert "100-character" in answer["detail"]
    assert image_service.history == []


async def test_errors_never_leak_a_stack_trace(gateway: aiohttp.ClientSession) -> None:
    status, answer = await post_raw(gateway, b"\xff\xfe{")
    assert status == 400
    assert "Traceback" not in answer["detail"]
    assert set(answer) == {"error", "detail"}
