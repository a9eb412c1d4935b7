"""chat-service fixtures: settings pointing at the fake upstream, a client, SSE reading."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from chat_service.app import create_app
from chat_service.config import ChatSettings
from tinychat_common.sse import SSEDecoder

from tests.fakes.openai_upstream import FakeOpenAI

ClientFactory = Callable[..., Awaitable[TestClient]]


def settings_for(fake: FakeOpenAI, **overrides: Any) -> ChatSettings:
    values: dict[str, Any] = {
        "openai_api_url": fake.url,
        "openai_api_key": "sk-test-secret-key-1234",
        "default_model": "fake-model",
        "available_models": "fake-model,fake-vision",
        "upstream_first_byte_timeout": 5.0,
        "upstream_idle_timeout": 5.0,
        "upstream_connect_timeout": 2.0,
    }
    values.update(overrides)
    return ChatSettings(**values)


@pytest.fixture
def chat_settings(fake_openai: FakeOpenAI) -> ChatSettings:
    return settings_for(fake_openai)


@pytest.fixture
async def chat_client(aiohttp_client: ClientFactory, chat_settings: ChatSettings) -> TestClient:
    return await aiohttp_client(create_app(chat_settings), server_kwargs={"handler_cancellation": True})


async def read_events(response: ClientResponse) -> list[dict[str, Any]]:
    """Every event of an SSE response, decoded, until the server ends it."""
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    decoder = SSEDecoder()
    payloads: list[str] = []
    async for chunk in response.content.iter_any():
        payloads.extend(decoder.feed(chunk))
    payloads.extend(decoder.close())
    return [json.loads(p) for p in payloads]


def answer_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if "content" in e and "done" not in e)


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


@pytest.fixture
def client_with(
    aiohttp_client: ClientFactory, fake_openai: FakeOpenAI
) -> Callable[..., Awaitable[TestClient]]:
    """A client of a chat-service whose settings differ from the defaults above."""

    async def make(**overrides: Any) -> TestClient:
        app = create_app(settings_for(fake_openai, **overrides))
        return await aiohttp_client(app, server_kwargs={"handler_cancellation": True})

    return make
