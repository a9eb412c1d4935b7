"""The image-service itself: config, validation, the concurrency cap, CHAT_LOG, metrics,
settings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tinychat_common.settings import load_settings
from tinychat_image.app_keys import CHAT_LOG
from tinychat_image.config import ImageSettings

from tests.fakes.swarmui import FakeSwarmUI, Generation
from tests.support.sse import read_events

from .conftest import MakeClient, stream, swarm_settings

pytestmark = pytest.mark.timeout(30)


async def test_config_reports_the_provider(fake_swarmui: FakeSwarmUI, image_client: MakeClient) -> None:
    client = await image_client(swarm_settings(fake_swarmui, image_model="Flux/dev"))
    async with client.get("/v1/images/config") as response:
        assert await response.json() == {
            "enabled": True,
            "provider": "swarmui",
            "model": "Flux/dev",
            "max_concurrent": 2,
        }


async def test_provider_none_disables_images_with_a_clear_error(image_client: MakeClient) -> None:
    client = await image_client(ImageSettings(image_provider="none"))
    async with client.get("/v1/images/config") as response:
        assert (await response.json())["enabled"] is False
    async with client.post("/v1/images/stream", json={"prompt": "a cat"}) as response:
        assert response.status == 503
        assert (await response.json())["error"] == "images_disabled"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"prompt": "   "}, 400, "empty_prompt"),
        ({"prompt": ""}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ({"prompt": "a cat", "size": "huge"}, 400, "invalid_request"),
        ({"prompt": "x" * 101}, 413, "message_too_long"),
    ],
)
async def test_bad_requests_get_a_json_error_before_any_stream(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient, body: dict, status: int, code: str
) -> None:
    client = await image_client(swarm_settings(fake_swarmui, max_message_length=100))
    async with client.post("/v1/images/stream", json=body) as response:
        assert response.status == status
        payload = await response.json()
    assert payload["error"] == code and payload["detail"]
    assert fake_swarmui.history == [] and fake_swarmui.sessions_created == []


async def test_over_the_concurrency_cap_is_busy_at_once(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(progress=[0.1], hang=True), Generation(progress=[0.1], hang=True))
    client = await image_client(swarm_settings(fake_swarmui, max_concurrent_images=2))
    holders = [await client.post("/v1/images/stream", json={"prompt": f"slow {n}"}) for n in range(2)]
    assert [r.status for r in holders] == [200, 200]

    async with client.post("/v1/images/stream", json={"prompt": "one too many"}) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "5"
        payload = await response.json()
    assert payload["error"] == "busy" and "try again" in payload["detail"]
    for _ in range(100):  # the two holders reach SwarmUI; the third never does
        if len(fake_swarmui.history) == 2:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    assert [h["prompt"] for h in fake_swarmui.history] == ["slow 0", "slow 1"]
    metrics = await (await client.get("/metrics")).text()
    assert "tinychat_image_tokens_in_use 2.0" in metrics

    holders[0].close()  # one slot comes free once its client leaves
    for _ in range(100):
        async with client.post("/v1/images/stream", json={"prompt": "now it fits"}) as response:
            if response.status == 200:
                events = await read_events(response)
                break
        await asyncio.sleep(0.05)
    assert any("image" in e for e in events)
    holders[1].close()


async def test_chat_log_has_one_line_per_request_without_image_bytes(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient, tmp_path: Path
) -> None:
    log_path = tmp_path / "chat.jsonl"
    fake_swarmui.enqueue(Generation(), Generation(error="out of memory"))
    client = await image_client(swarm_settings(fake_swarmui, chat_log=str(log_path)))
    await stream(client, "a red fox")
    await stream(client, "a blue fox")
    await client.app[CHAT_LOG].flush()

    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(e["prompt"], e["outcome"]) for e in lines] == [
        ("a red fox", "ok"),
        ("a blue fox", "provider_refused"),
    ]
    for entry in lines:
        assert entry["service"] == "image"
        assert entry["provider"] == "swarmui" and entry["model"] == "Flux/flux1-schnell-fp8"
        assert entry["duration_ms"] >= 0 and entry["timestamp"]
    assert "base64" not in log_path.read_text()


async def test_metrics_count_generations_by_outcome(
    fake_swarmui: FakeSwarmUI, image_client: MakeClient
) -> None:
    fake_swarmui.enqueue(Generation(), Generation(error="nope"))
    client = await image_client(swarm_settings(fake_swarmui))
    await stream(client)
    await stream(client)
    async with client.get("/metrics") as response:
        text = await response.text()
    assert 'tinychat_image_generations_total{outcome="ok",provider="swarmui"} 1.0' in text
    assert 'tinychat_image_generations_total{outcome="provider_refused",provider="swarmui"} 1.0' in text
    assert "tinychat_image_generation_duration_seconds_count" in text


async def test_readyz_reports_slots_in_use(fake_swarmui: FakeSwarmUI, image_client: MakeClient) -> None:
    client = await image_client(swarm_settings(fake_swarmui))
    async with client.get("/readyz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ready" and body["images_in_progress"] == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMAGE_PROVIDER", "midjourney"),
        ("SWARMUI", "localhost:7801"),
        ("IMAGE_STEPS", "0"),
        ("IMAGE_TIMEOUT", "-1"),
        ("OPENAI_IMAGE_SIZE", "big"),
        ("MAX_CONCURRENT_IMAGES", "0"),
        ("CHAT_LOG", "/nonexistent-dir/chat.jsonl"),
    ],
)
def test_bad_settings_stop_the_service_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit):
        load_settings(ImageSettings)
    assert variable in capsys.readouterr().err


def test_openai_provider_without_any_key_is_a_start_up_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGE_PROVIDER", "openai")
    with pytest.raises(SystemExit):
        load_settings(ImageSettings)
    assert "OPENAI_IMAGE_API_KEY" in capsys.readouterr().err


def test_defaults_match_the_documented_ones() -> None:
    settings = ImageSettings()
    assert (settings.port, settings.image_provider, settings.swarmui) == (
        8002,
        "swarmui",
        "http://localhost:7801",
    )
    assert (settings.image_model, settings.image_cfgscale, settings.image_steps) == (
        "Flux/flux1-schnell-fp8",
        1.0,
        6,
    )
    assert (settings.image_width, settings.image_height, settings.image_seed) == (1024, 1024, -1)
    assert (settings.image_timeout, settings.openai_image_model, settings.openai_image_size) == (
        300,
        "dall-e-3",
        "1024x1024",
    )
    assert "sk-" not in repr(ImageSettings(openai_image_api_key="sk-hidden"))
