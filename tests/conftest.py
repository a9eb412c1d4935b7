"""Shared fixtures: an isolated environment for every test, and the fake upstreams."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.env import SERVICE_ENV_PREFIXES


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(SERVICE_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake
