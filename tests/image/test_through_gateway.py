"""The whole path: `/image …` in a chat → gateway → image-service → fake SwarmUI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings
from tinychat_image.app import create_app as create_image_app

from tests.fakes.swarmui import FakeSwarmUI, Generation
from tests.support.net import server_url
from tests.support.sse import read_events

from .conftest import assert_ends_with_error, swarm_settings
from .images import decode_data_uri

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def image_server(fake_swarmui: FakeSwarmUI) -> AsyncIterator[TestServer]:
    # The default worker processes here: the whole path as it runs in production.
    settings = swarm_settings(
        fake_swarmui, image_timeout=5, max_concurrent_images=1, image_worker_processes=1
    )
    server = TestServer(create_image_app(settings), host="127.0.0.1")
    await server.start_server()  # TestServer always cancels handlers of clients that leave
    yield server
    await server.close()


@pytest.fixture
async def gateway(aiohttp_client: Any, image_server: TestServer, tmp_path: Any) -> Any:
    settings = GatewaySettings(
        image_service_url=server_url(image_server),
        chat_service_url="http://127.0.0.1:9",
        rlm_service_url="http://127.0.0.1:9",
        web_dir=tmp_path,
    )
    return await aiohttp_client(create_gateway_app(settings), server_kwargs={"handler_cancellation": True})


def image_chat(prompt: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"/image {prompt}"}]}


async def test_image_command_streams_progress_and_the_image_through_the_gateway(
    gateway: Any, fake_swarmui: FakeSwarmUI
) -> None:
    async with gateway.post("/api/chat/stream", json=image_chat("a lighthouse at dusk")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = await read_events(response)

    assert [e["status"] for e in events if "status" in e][-1] == "Generating image… 75%"
    image = next(e for e in events if "image" in e)
    assert image["prompt"] == "a lighthouse at dusk"
    assert decode_data_uri(image["image"]).mode == "RGB"
    assert events[-1]["done"] is True and events[-1]["finish_reason"] == "stop"
    assert fake_swarmui.history[0]["prompt"] == "a lighthouse at dusk"


async def test_provider_failure_reaches_the_browser_as_error_and_done(
    gateway: Any, fake_swarmui: FakeSwarmUI
) -> None:
    fake_swarmui.enqueue(Generation(error="CUDA out of memory"))
    async with gateway.post("/api/chat/stream", json=image_chat("x")) as response:
        error = assert_ends_with_error(await read_events(response), "provider_refused")
    assert "CUDA out of memory" in error["error"]


async def test_browser_leaving_interrupts_swarmui_through_both_hops(
    gateway: Any, fake_swarmui: FakeSwarmUI
) -> None:
    fake_swarmui.enqueue(Generation(progress=[0.1], hang=True))
    response = await gateway.post("/api/chat/stream", json=image_chat("slow"))
    await asyncio.wait_for(fake_swarmui.started.wait(), 5)
    response.close()
    await asyncio.wait_for(fake_swarmui.interrupted.wait(), 5)
    await asyncio.wait_for(fake_swarmui.disconnected.wait(), 5)


async def test_busy_image_service_answers_429_through_the_gateway(
    gateway: Any, fake_swarmui: FakeSwarmUI
) -> None:
    fake_swarmui.enqueue(Generation(progress=[0.1], hang=True))
    holder = await gateway.post("/api/chat/stream", json=image_chat("slow"))
    await asyncio.wait_for(fake_swarmui.started.wait(), 5)
    async with gateway.post("/api/chat/stream", json=image_chat("second")) as response:
        assert response.status == 429
        assert (await response.json())["error"] == "busy"
    holder.close()


async def test_gateway_config_reports_image_generation(gateway: Any) -> None:
    async with gateway.get("/api/config") as response:
        body = await response.json()
    assert body["image"]["enabled"] is True
    assert body["image"]["provider"] == "swarmui"
