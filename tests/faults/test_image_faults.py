"""An image provider that hangs: past IMAGE_TIMEOUT the user gets a readable error and
`done` through the gateway, the provider sees the request go away, and the image slot
comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings
from tinychat_image.app import create_app as create_image_app
from tinychat_image.app_keys import LIMITER
from tinychat_image.config import ImageSettings

from tests.fakes.openai_images import FakeOpenAIImages, ImageReply
from tests.fakes.swarmui import FakeSwarmUI, Generation
from tests.support.net import closed_port_url, server_url
from tests.support.sse import EventReader

from .stack import (
    FAULT_BOUND_SECONDS,
    assert_no_new_tasks,
    assert_readable_error_then_done,
    in_process,
    task_snapshot,
    wait_event,
)

IMAGE_TIMEOUT = 0.6


def image_body(prompt: str = "a lighthouse at dusk") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"/image {prompt}"}]}


@pytest.fixture
async def openai_images() -> AsyncIterator[FakeOpenAIImages]:
    async with FakeOpenAIImages(api_key="sk-image-secret") as fake:
        yield fake


async def generate_through_gateway(settings: ImageSettings) -> tuple[list[dict[str, Any]], int]:
    """Runs one `/image` chat through the gateway; returns the events and the image slots
    still held once the stream has ended and every task has wound down."""
    async with in_process(create_image_app(settings)) as image:
        gateway_settings = GatewaySettings(
            chat_service_url=closed_port_url(),
            image_service_url=server_url(image.server),
            rlm_service_url=closed_port_url(),
            config_cache_seconds=0,
        )
        async with in_process(create_gateway_app(gateway_settings)) as gateway:
            before = task_snapshot()
            async with gateway.post("/api/chat/stream", json=image_body()) as response:
                events = await EventReader(response, FAULT_BOUND_SECONDS).to_the_end()
            await assert_no_new_tasks(before)
            return events, await image.server.app[LIMITER].in_use()


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "http"])
async def test_swarmui_hanging_past_image_timeout_ends_with_error_and_done(websocket: bool) -> None:
    async with FakeSwarmUI(websocket=websocket) as swarmui:
        swarmui.enqueue(Generation(progress=[0.3], hang=True))
        settings = ImageSettings(
            image_provider="swarmui",
            swarmui=swarmui.base_url,
            image_timeout=IMAGE_TIMEOUT,
            image_worker_processes=0,
        )
        events, slots_held = await generate_through_gateway(settings)
        assert_readable_error_then_done(events, "IMAGE_TIMEOUT")
        assert not any("image" in e for e in events)
        await wait_event(swarmui.disconnected, "SwarmUI saw the hung generation abandoned")
    assert slots_held == 0


async def test_openai_images_hanging_past_image_timeout_ends_with_error_and_done(
    openai_images: FakeOpenAIImages,
) -> None:
    openai_images.enqueue(ImageReply(delay=3600))
    settings = ImageSettings(
        image_provider="openai",
        openai_image_api_base=openai_images.url,
        openai_image_api_key="sk-image-secret",
        image_timeout=IMAGE_TIMEOUT,
        image_worker_processes=0,
    )
    events, slots_held = await generate_through_gateway(settings)
    error = assert_readable_error_then_done(events, "IMAGE_TIMEOUT")
    assert "sk-image-secret" not in error["error"]
    await wait_event(openai_images.disconnected, "the images API saw the request abandoned")
    assert slots_held == 0
