"""Fixtures for image-service: the fake providers, settings pointing at them, and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tinychat_image.app import create_app
from tinychat_image.config import ImageSettings

from tests.fakes.openai_images import FakeOpenAIImages
from tests.fakes.swarmui import FakeSwarmUI
from tests.support.sse import read_events


@pytest.fixture
async def fake_swarmui() -> AsyncIterator[FakeSwarmUI]:
    async with FakeSwarmUI() as fake:
        yield fake


@pytest.fixture
async def fake_openai_images() -> AsyncIterator[FakeOpenAIImages]:
    async with FakeOpenAIImages(api_key="sk-test-secret-key-123") as fake:
        yield fake


def swarm_settings(fake: FakeSwarmUI, **overrides: Any) -> ImageSettings:
    # Threads (0 worker processes) keep each test fast; the process pool has its own tests.
    values: dict[str, Any] = {
        "image_provider": "swarmui",
        "swarmui": fake.base_url,
        "image_timeout": 10,
        "image_worker_processes": 0,
    }
    values.update(overrides)
    return ImageSettings(**values)


def openai_settings(fake: FakeOpenAIImages, **overrides: Any) -> ImageSettings:
    values: dict[str, Any] = {
        "image_provider": "openai",
        "openai_image_api_base": fake.url,
        "openai_image_api_key": "sk-test-secret-key-123",
        "image_timeout": 10,
        "image_worker_processes": 0,
    }
    values.update(overrides)
    return ImageSettings(**values)


Client = Any  # pytest-aiohttp's TestClient
MakeClient = Callable[[ImageSettings], Awaitable[Client]]


@pytest.fixture
def image_client(aiohttp_client: Any) -> MakeClient:
    async def make(settings: ImageSettings) -> Client:
        return await aiohttp_client(create_app(settings), server_kwargs={"handler_cancellation": True})

    return make


async def stream(client: Client, prompt: str = "a red fox in snow") -> list[dict[str, Any]]:
    async with client.post("/v1/images/stream", json={"prompt": prompt}) as response:
        return await read_events(response)


def assert_ends_with_error(events: list[dict[str, Any]], code: str) -> dict[str, Any]:
    """The stream carried exactly one error with `code`, then exactly one `done`, last."""
    assert events[-1] == {"done": True, "finish_reason": "error", "usage": None}
    assert [e for e in events if e.get("done")] == [events[-1]]
    errors = [e for e in events if "error" in e]
    assert len(errors) == 1, events
    assert errors[0]["code"] == code, errors[0]
    assert errors[0]["error"]
    return errors[0]
