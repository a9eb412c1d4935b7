"""image-service against a fake SwarmUI: websocket with progress, HTTP fallback, sessions,
failures, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import json

import pytest
from tinychat_image.app_keys import PROVIDER

from tests.fakes.swarmui import FakeSwarmUI, Generation, png_bytes

from .conftest import MakeClient, assert_ends_with_error, stream, swarm_settings
from .images import decode_data_uri, png_bomb

pytestmark = pytest.mark.timeout(30)


async def test_websocket_generation_streams_progress_then_a_jpeg(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(image=png_bytes((2048, 1024), "RGBA", (0, 0, 0, 0))))
    client = await image_client(swarm_settings(fake_swarmui))
    events = await stream(client, "a lighthouse at dusk")

    statuses = [e["status"] for e in events if "status" in e]
    assert statuses == [
        "Generating image…",
        "Generating image… 25%",
        "Generating image… 50%",
        "Generating image… 75%",
    ]
    images = [e for e in events if "image" in e]
    assert len(images) == 1
    assert images[0]["prompt"] == "a lighthouse at dusk"
    picture = decode_data_uri(images[0]["image"])
    assert picture.size == (1024, 512)
    assert min(picture.getpixel((500, 250))) > 245  # transparent → white
    assert events[-1] == {"done": True, "finish_reason": "stop", "usage": None}


async def test_request_carries_the_configured_generation_parameters(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    settings = swarm_settings(
        fake_swarmui,
        image_model="SDXL/sdxl",
        image_cfgscale=4.5,
        image_steps=20,
        image_width=768,
        image_height=512,
        image_seed=42,
    )
    client = await image_client(settings)
    await stream(client, "a cat")
    sent = fake_swarmui.history[0]
    assert sent["route"] == "ws"
    assert sent["session_id"] == fake_swarmui.sessions_created[0]
    assert {
        k: sent[k] for k in ("images", "prompt", "model", "cfgscale", "steps", "width", "height", "seed")
    } == {
        "images": 1,
        "prompt": "a cat",
        "model": "SDXL/sdxl",
        "cfgscale": 4.5,
        "steps": 20,
        "width": 768,
        "height": 512,
        "seed": 42,
    }
    assert sent["donotsave"] is True


async def test_session_is_reused_across_generations(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    client = await image_client(swarm_settings(fake_swarmui))
    for _ in range(3):
        assert any("image" in e for e in await stream(client))
    assert len(fake_swarmui.sessions_created) == 1
    assert {h["session_id"] for h in fake_swarmui.history} == set(fake_swarmui.sessions_created)


async def test_expired_session_is_renewed_once_and_the_generation_succeeds(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    client = await image_client(swarm_settings(fake_swarmui))
    await stream(client)
    fake_swarmui.expire_sessions()  # SwarmUI restarted
    events = await stream(client)

    assert any("image" in e for e in events)
    assert events[-1]["finish_reason"] == "stop"
    assert len(fake_swarmui.sessions_created) == 2
    old, new = fake_swarmui.sessions_created
    assert [h["session_id"] for h in fake_swarmui.history] == [old, old, new]


async def test_http_fallback_when_the_websocket_is_not_available(image_client: MakeClient) -> None:
    async with FakeSwarmUI(websocket=False) as fake:
        fake.enqueue(Generation(as_path=True), Generation())
        client = await image_client(swarm_settings(fake))
        first = await stream(client)
        second = await stream(client)

    for events in (first, second):
        assert decode_data_uri(next(e for e in events if "image" in e)["image"]).size == (64, 48)
        assert events[-1]["finish_reason"] == "stop"
    assert [h["route"] for h in fake.history] == ["http", "http"]
    assert len(fake.view_requests) == 1
    assert " a cat-flux-1.png" in fake.view_requests[0]  # the space was sent URL-encoded, and decoded


async def test_image_given_as_a_view_path_is_fetched_from_swarmui(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(as_path=True, image=png_bytes((100, 50), "RGB", (0, 0, 255))))
    client = await image_client(swarm_settings(fake_swarmui))
    events = await stream(client)
    picture = decode_data_uri(next(e for e in events if "image" in e)["image"])
    assert picture.size == (100, 50)
    assert picture.getpixel((50, 25))[2] > 230
    assert len(fake_swarmui.view_requests) == 1


async def test_swarmui_error_message_reaches_the_user(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(error="No backends match the settings of the request given!"))
    client = await image_client(swarm_settings(fake_swarmui))
    error = assert_ends_with_error(await stream(client), "provider_refused")
    assert "No backends match" in error["error"]


async def test_swarmui_down_gives_a_readable_error_and_done(image_client: MakeClient) -> None:
    async with FakeSwarmUI() as gone:
        url = gone.base_url  # a port nobody listens on once it stops
    client = await image_client(swarm_settings(gone, swarmui=url))
    error = assert_ends_with_error(await stream(client), "provider_unavailable")
    assert "not reachable" in error["error"] and url in error["error"]


@pytest.mark.parametrize(
    ("generation", "code"),
    [
        (Generation(raw="<html>oops</html>"), "provider_bad_response"),
        (Generation(raw="[1, 2]"), "provider_bad_response"),
        (Generation(close_without_image=True), "provider_bad_response"),
        (Generation(image=b"GIF89a but not really"), "not_an_image"),
        (Generation(image=png_bomb(30000, 30000)), "image_too_large"),
    ],
)
async def test_bad_websocket_answers_give_a_readable_error_and_done(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient, generation: Generation, code: str
) -> None:
    fake_swarmui.enqueue(generation)
    client = await image_client(swarm_settings(fake_swarmui))
    assert_ends_with_error(await stream(client), code)


@pytest.mark.parametrize(
    ("generation", "code"),
    [
        (Generation(status=500), "provider_unavailable"),
        (Generation(status=502, raw="Bad Gateway"), "provider_unavailable"),
        (Generation(status=200, raw="{not json"), "provider_bad_response"),
        (Generation(status=404, raw="Not found"), "provider_bad_response"),
        (Generation(error="Model not found"), "provider_refused"),
    ],
)
async def test_bad_http_answers_give_a_readable_error_and_done(
    image_client: MakeClient, generation: Generation, code: str
) -> None:
    async with FakeSwarmUI(websocket=False) as fake:
        fake.enqueue(generation)
        client = await image_client(swarm_settings(fake))
        assert_ends_with_error(await stream(client), code)


async def test_generation_slower_than_image_timeout_is_cancelled_and_interrupted(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(progress=[0.1], hang=True))
    client = await image_client(swarm_settings(fake_swarmui, image_timeout=0.5))
    error = assert_ends_with_error(await stream(client), "image_timeout")
    assert "IMAGE_TIMEOUT" in error["error"]
    await asyncio.wait_for(fake_swarmui.interrupted.wait(), 5)
    assert fake_swarmui.interrupts == fake_swarmui.sessions_created
    await asyncio.wait_for(fake_swarmui.disconnected.wait(), 5)


async def test_client_disconnect_closes_the_socket_and_interrupts_swarmui(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(progress=[0.1], hang=True))
    client = await image_client(swarm_settings(fake_swarmui))
    response = await client.post("/v1/images/stream", json={"prompt": "a slow one"})
    assert response.status == 200
    await asyncio.wait_for(fake_swarmui.started.wait(), 5)
    response.close()

    await asyncio.wait_for(fake_swarmui.interrupted.wait(), 5)
    await asyncio.wait_for(fake_swarmui.disconnected.wait(), 5)
    assert fake_swarmui.interrupts == [fake_swarmui.sessions_created[0]]

    # The interrupted session is not handed to the next generation.
    events = await stream(client)
    assert any("image" in e for e in events)
    assert fake_swarmui.history[-1]["session_id"] != fake_swarmui.sessions_created[0]


async def test_finished_generation_is_not_interrupted(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    client = await image_client(swarm_settings(fake_swarmui))
    await stream(client)
    await client.app[PROVIDER].close()  # waits for any interrupt still on its way
    assert fake_swarmui.interrupts == []


async def test_keepalive_comments_flow_while_swarmui_is_silent(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(progress=[0.5], step_delay=0.6))
    client = await image_client(swarm_settings(fake_swarmui, keepalive_seconds=0.1))
    async with client.post("/v1/images/stream", json={"prompt": "x"}) as response:
        body = await response.read()
    assert b": keepalive\n\n" in body
    assert json.loads(body.rstrip().rsplit(b"data: ", 1)[1])["done"] is True
