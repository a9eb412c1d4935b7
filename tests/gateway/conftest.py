"""Gateway fixtures: the real chat-service (on the fake OpenAI upstream) and fake image and
RLM services, each a real server on 127.0.0.1 port 0, behind a gateway app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tinychat_chat.app import create_app as create_chat_app
from tinychat_gateway.app import create_app
from tinychat_gateway.config import GatewaySettings

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.tinychat_service import FakeService
from tests.support.chat_service import chat_settings_for
from tests.support.net import server_url

ClientFactory = Callable[..., Awaitable[TestClient]]
GatewayFactory = Callable[..., Awaitable[TestClient]]

INDEX_HTML = '<!doctype html><title>TinyChat</title><script type="module" src="/js/main.js"></script>\n'


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    """A small web/ folder: the app files, two allowed libraries, and things never to serve."""
    root = tmp_path / "web"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text(INDEX_HTML)
    (root / "js" / "main.js").write_text("export const ready = true;\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / "package.json").write_text("{}\n")
    modules = root / "node_modules"
    (modules / "marked" / "lib").mkdir(parents=True)
    (modules / "marked" / "lib" / "marked.esm.js").write_text("export function marked() {}\n")
    (modules / "@highlightjs" / "cdn-assets").mkdir(parents=True)
    (modules / "@highlightjs" / "cdn-assets" / "highlight.min.js").write_text("var hljs = {};\n")
    (modules / "left-pad").mkdir(parents=True)
    (modules / "left-pad" / "index.js").write_text("module.exports = 1;\n")
    (tmp_path / "outside.txt").write_text("not for the web\n")
    return root


@pytest.fixture
async def chat_server(fake_openai: FakeOpenAI) -> AsyncIterator[TestServer]:
    """The real chat-service, talking to the fake OpenAI upstream."""
    settings = chat_settings_for(fake_openai)
    server = TestServer(create_chat_app(settings), host="127.0.0.1", port=0)
    await server.start_server()  # TestServer cancels handlers of clients that leave
    yield server
    await server.close()


@pytest.fixture
async def image_service() -> AsyncIterator[FakeService]:
    async with FakeService(config={"enabled": True, "provider": "swarmui"}) as service:
        yield service


@pytest.fixture
async def rlm_service() -> AsyncIterator[FakeService]:
    config = {"enabled": True, "max_iterations": 20, "timeout": 300, "sandbox": "process"}
    async with FakeService(config=config) as service:
        yield service


@pytest.fixture
def gateway_settings(
    chat_server: TestServer, image_service: FakeService, rlm_service: FakeService, web_dir: Path
) -> Callable[..., GatewaySettings]:
    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "chat_service_url": server_url(chat_server),
            "image_service_url": image_service.base_url,
            "rlm_service_url": rlm_service.base_url,
            "web_dir": web_dir,
            "downstream_connect_timeout": 2.0,
            "downstream_idle_timeout": 5.0,
            "keepalive_seconds": 15.0,
        }
        values.update(overrides)
        return GatewaySettings(**values)

    return make


@pytest.fixture
def make_gateway(
    aiohttp_client: ClientFactory, gateway_settings: Callable[..., GatewaySettings]
) -> GatewayFactory:
    async def make(**overrides: Any) -> TestClient:
        app = create_app(gateway_settings(**overrides))
        return await aiohttp_client(app, server_kwargs={"handler_cancellation": True})

    return make


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> TestClient:
    return await make_gateway()
