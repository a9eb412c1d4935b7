"""/api/config and /api/health: what the services say, and a down service never a 500."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.tinychat_service import FakeService
from tests.gateway.conftest import GatewayFactory
from tests.support.net import closed_port_url

pytestmark = pytest.mark.timeout(20)


async def test_config_combines_models_image_and_rlm(gateway: aiohttp.ClientSession) -> None:
    async with gateway.get("/api/config") as response:
        assert response.status == 200
        config = await response.json()
    assert config["models"] == ["fake-model", "fake-vision"]
    assert config["default_model"] == "fake-model"
    assert config["default_temperature"] == 0.7
    assert config["max_message_length"] == 262144
    assert config["max_conversation_history"] == 50
    assert config["max_request_bytes"] == 20 * 1024 * 1024
    assert config["chat"] == {"enabled": True}
    assert config["image"] == {"enabled": True, "provider": "swarmui"}
    assert config["rlm"] == {
        "enabled": True,
        "passcode_required": False,
        "max_iterations": 20,
        "timeout": 300.0,
        "sandbox": "process",
        "reason": None,
    }
    assert config["version"]


async def test_config_says_when_a_passcode_is_required(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(rlm_passcode="s3cret")
    config = await (await gateway.get("/api/config")).json()
    assert config["rlm"]["passcode_required"] is True
    assert "s3cret" not in str(config)


async def test_config_with_every_service_down_shows_them_disabled(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(
        chat_service_url=closed_port_url(),
        image_service_url=closed_port_url(),
        rlm_service_url=closed_port_url(),
    )
    async with gateway.get("/api/config") as response:
        assert response.status == 200
        config = await response.json()
    assert config["models"] == []
    assert config["chat"]["enabled"] is False
    assert config["image"] == {"enabled": False, "provider": None}
    assert config["rlm"]["enabled"] is False
    assert config["max_message_length"] == 262144


async def test_config_ignores_odd_fields_from_a_service(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    image_service.config = {"enabled": "yes", "provider": 42}
    gateway = await make_gateway()
    config = await (await gateway.get("/api/config")).json()
    assert config["image"] == {"enabled": False, "provider": None}


async def test_config_answers_are_cached_briefly(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    gateway = await make_gateway(config_cache_seconds=60)
    for _ in range(3):
        assert (await gateway.get("/api/config")).status == 200
    assert image_service.config_calls == 1
    image_service.config = {"enabled": False, "provider": None}
    uncached = await make_gateway(config_cache_seconds=0)
    for _ in range(2):
        config = await (await uncached.get("/api/config")).json()
    assert config["image"]["enabled"] is False
    assert image_service.config_calls == 3


async def test_health_reports_each_service_readiness(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    rlm_service.ready = False
    gateway = await make_gateway(image_service_url=closed_port_url())
    async with gateway.get("/api/health") as response:
        assert response.status == 200
        health = await response.json()
    assert health["status"] == "degraded"
    assert health["services"]["chat"]["status"] == "ready"
    assert health["services"]["image"]["status"] == "unreachable"
    assert health["services"]["rlm"]["status"] == "not_ready"
    rlm_service.ready = True


async def test_health_is_ok_when_every_service_is_ready(gateway: aiohttp.ClientSession) -> None:
    health = await (await gateway.get("/api/health")).json()
    assert health["status"] == "ok"
    assert {s["status"] for s in health["services"].values()} == {"ready"}


async def test_gateway_probes_answer(gateway: aiohttp.ClientSession) -> None:
    assert (await gateway.get("/healthz")).status == 200
    assert (await gateway.get("/readyz")).status == 200
    metrics = await (await gateway.get("/metrics")).text()
    assert "tinychat_active_streams" in metrics
