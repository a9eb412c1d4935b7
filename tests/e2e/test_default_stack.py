"""The compose stack as a new user gets it with no configuration at all: the UI is served,
the chat answers from the built-in demo model, only the gateway is reachable, and every
container runs non-root on a read-only root filesystem.

Run by scripts/e2e.sh after `docker-compose up` with the defaults.
"""

from __future__ import annotations

import json
import re
import subprocess

import aiohttp
import pytest

from tests.e2e.conftest import PROJECT, containers, stream_chat

pytestmark = pytest.mark.e2e


async def test_the_ui_and_its_pinned_libraries_come_from_the_gateway(http: aiohttp.ClientSession) -> None:
    async with http.get("/") as page:
        html = await page.text()
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
        script_policy = page.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
        assert "unsafe-inline" not in script_policy
    vendor_paths = re.findall(r"""(?:src|href)="(/vendor/[^"]+)\"""", html)
    assert vendor_paths, "index.html loads its libraries from /vendor/"
    for path in vendor_paths:
        async with http.get(path) as asset:
            assert asset.status == 200, path
            assert "immutable" in asset.headers["Cache-Control"], path


async def test_every_service_behind_the_gateway_reports_ready(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/health") as response:
        health = await response.json()
    assert health["status"] == "ok", health


async def test_with_no_configuration_the_chat_streams_from_the_demo(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/config") as response:
        config = await response.json()
    assert "tinychat-demo" in json.dumps(config)
    answer = await stream_chat(http, {"messages": [{"role": "user", "content": "Hello, what can you do?"}]})
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert len(answer.of("content")) > 3, "the answer arrives in pieces"
    assert len(answer.text) > 40
    assert answer.done["finish_reason"] == "stop"
    assert not answer.of("error")


def inspect_project_containers() -> list[dict]:
    ids = containers(f"com.docker.compose.project={PROJECT}")
    inspect = ["docker", "inspect", *ids]
    return json.loads(subprocess.run(inspect, capture_output=True, text=True, timeout=30, check=True).stdout)


def service_of(container: dict) -> str:
    return container["Config"]["Labels"]["com.docker.compose.service"]


def test_only_the_gateway_publishes_a_port_on_the_host() -> None:
    published = {
        service_of(c)
        for c in inspect_project_containers()
        if any(bindings for bindings in (c["NetworkSettings"]["Ports"] or {}).values())
    }
    assert published == {"gateway"}


def test_every_container_runs_non_root_on_a_read_only_root_filesystem() -> None:
    running = inspect_project_containers()
    assert {"gateway", "chat-service", "image-service", "rlm-service", "demo-model", "redis", "sandbox"} <= {
        service_of(c) for c in running
    }
    for container in running:
        user = container["Config"]["User"].split(":")[0]
        assert user not in ("", "0", "root"), service_of(container)
        assert container["HostConfig"]["ReadonlyRootfs"] is True, service_of(container)
        assert container["HostConfig"]["CapDrop"] == ["ALL"], service_of(container)


async def test_rlm_is_on_through_the_sandbox_pool_with_no_docker_socket(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/config") as response:
        rlm = (await response.json())["rlm"]
    assert rlm["enabled"] is True and rlm["sandbox"] == "pool", rlm
    (service,) = [c for c in inspect_project_containers() if service_of(c) == "rlm-service"]
    assert not any("docker.sock" in mount["Source"] for mount in service["Mounts"])
