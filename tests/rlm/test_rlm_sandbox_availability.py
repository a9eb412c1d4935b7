"""An rlm-service whose sandboxes cannot start keeps running and says why RLM is off."""

from __future__ import annotations

import os

import pytest
from tinychat_rlm.app import create_app

from tests.rlm.harness import rlm_settings


@pytest.fixture
def unreachable_docker(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine-here.sock")


async def test_an_unreachable_docker_engine_turns_rlm_off_with_the_reason(
    aiohttp_client, unreachable_docker
) -> None:
    settings = rlm_settings("http://127.0.0.1:9", "docker")
    client = await aiohttp_client(create_app(settings))

    config = await (await client.get("/v1/rlm/config")).json()
    assert config["enabled"] is False
    assert "docker engine is not reachable" in config["problem"]
    assert (await client.get("/readyz")).status == 200


async def test_an_rlm_request_without_a_sandbox_gets_a_readable_503(
    aiohttp_client, unreachable_docker
) -> None:
    settings = rlm_settings("http://127.0.0.1:9", "docker")
    client = await aiohttp_client(create_app(settings))

    body = {"rlm": True, "messages": [{"role": "user", "content": "count the words"}]}
    answer = await client.post("/v1/rlm/stream", json=body)
    assert answer.status == 503
    error = await answer.json()
    assert error["error"] == "sandbox_unavailable"
    assert "docker engine is not reachable" in error["detail"]


async def test_the_process_backend_is_available(aiohttp_client) -> None:
    from tinychat_rlm.sandbox.process import probe_isolation_once

    if not os.environ.get("CI") and (reason := (await probe_isolation_once()).problem):
        pytest.skip(reason)  # in CI it must be available
    client = await aiohttp_client(create_app(rlm_settings("http://127.0.0.1:9", "process")))
    config = await (await client.get("/v1/rlm/config")).json()
    assert config["enabled"] is True
    assert config["problem"] is None
