"""Shared fixtures: an isolated environment for every test, and the fake upstreams."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.openai_upstream import FakeOpenAI

# Every variable a TinyChat service reads; none may leak in from the developer's shell.
_PREFIXES = (
    "OPENAI_",
    "DEFAULT_",
    "AVAILABLE_MODELS",
    "MAX_",
    "CHAT_",
    "IMAGE_",
    "SWARMUI",
    "RLM_",
    "REDIS_",
    "ENABLE_DEBUG",
    "ALLOWED_",
    "PORT",
    "HOST",
    "SHUTDOWN_",
    "KEEPALIVE_",
    "TRUSTED_PROXIES",
    "RATE_LIMIT",
    "WEB_DIR",
)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake
