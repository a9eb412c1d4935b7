"""chat-service fixtures: settings pointing at the fake upstream, and clients of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tinychat_chat.app import create_app
from tinychat_chat.config import ChatSettings

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.chat_service import chat_settings_for

ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def chat_settings(fake_openai: FakeOpenAI) -> ChatSettings:
    return chat_settings_for(fake_openai)


@pytest.fixture
async def chat_client(aiohttp_client: ClientFactory, chat_settings: ChatSettings) -> TestClient:
    return await aiohttp_client(create_app(chat_settings), server_kwargs={"handler_cancellation": True})


@pytest.fixture
def client_with(
    aiohttp_client: ClientFactory, fake_openai: FakeOpenAI
) -> Callable[..., Awaitable[TestClient]]:
    """A client of a chat-service whose settings differ from the defaults above."""

    async def make(**overrides: Any) -> TestClient:
        app = create_app(chat_settings_for(fake_openai, **overrides))
        return await aiohttp_client(app, server_kwargs={"handler_cancellation": True})

    return make
