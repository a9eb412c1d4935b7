"""Every internal API refuses a caller without the service token, as a pod or a sandbox on
the backend network would call it; the gateway holds the token and everything works."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import pytest
from tinychat_chat.app import create_app as create_chat_app
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings
from tinychat_image.app import create_app as create_image_app
from tinychat_image.config import ImageSettings
from tinychat_rlm.app import create_app as create_rlm_app
from tinychat_rlm.config import RlmSettings

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.chat_service import chat_settings_for
from tests.support.internal import BEARER, TEST_INTERNAL_TOKEN
from tests.support.messages import chat_body
from tests.support.net import closed_port_url, serve_app
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(30)

ATTEMPTS = [
    ({}, "no token"),
    ({"Authorization": "Bearer wrong-token-wrong-token-0000"}, "a wrong token"),
    ({"Authorization": f"Basic {TEST_INTERNAL_TOKEN}"}, "the token in another scheme"),
    ({"Authorization": f"Bearer {TEST_INTERNAL_TOKEN[:-1]}"}, "all but its last character"),
]


@pytest.fixture
async def services(fake_openai: FakeOpenAI) -> dict[str, str]:
    """The three real services with the token on, each served on a loopback port."""
    runners: list[aiohttp.web.AppRunner] = []
    token = {"internal_token": TEST_INTERNAL_TOKEN}
    chat = await serve_app(create_chat_app(chat_settings_for(fake_openai, **token)), runners)
    image_settings = ImageSettings(image_provider="none", **token)
    image = await serve_app(create_image_app(image_settings), runners)
    rlm_settings = RlmSettings(chat_service_url=chat, rlm_sandbox="process", **token)
    rlm = await serve_app(create_rlm_app(rlm_settings), runners)
    yield {"chat": chat, "image": image, "rlm": rlm}
    for runner in runners:
        await runner.cleanup()


INTERNAL_CALLS = [
    ("chat", "POST", "/v1/chat/stream", chat_body()),
    ("chat", "POST", "/v1/chat/complete", chat_body()),
    ("chat", "GET", "/v1/models", None),
    ("image", "POST", "/v1/images/stream", {"prompt": "a cat"}),
    ("image", "GET", "/v1/images/config", None),
    ("rlm", "POST", "/v1/rlm/stream", chat_body()),
    ("rlm", "GET", "/v1/rlm/config", None),
]


@pytest.mark.parametrize(("service", "method", "path", "body"), INTERNAL_CALLS)
async def test_an_internal_api_answers_401_to_a_caller_without_the_token(
    services: dict[str, str], fake_openai: FakeOpenAI, service: str, method: str, path: str, body: object
) -> None:
    async with aiohttp.ClientSession() as session:
        for headers, what in ATTEMPTS:
            async with session.request(method, services[service] + path, json=body, headers=headers) as r:
                assert r.status == 401, what
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
                assert (await r.json())["error"] == "unauthorized"
        assert fake_openai.history == []  # no refused call reached the model API
        async with session.request(method, services[service] + path, json=body, headers=BEARER) as r:
            assert r.status != 401


@pytest.mark.parametrize("service", ["chat", "image", "rlm"])
async def test_probes_stay_open_for_the_orchestrator(services: dict[str, str], service: str) -> None:
    async with aiohttp.ClientSession() as session:
        for probe in ("/healthz", "/readyz", "/metrics"):
            async with session.get(services[service] + probe) as response:
                assert response.status in (200, 503), probe


async def test_the_gateway_sends_the_token_and_the_chat_works(
    services: dict[str, str], aiohttp_client, tmp_path
) -> None:
    settings = GatewaySettings(
        chat_service_url=services["chat"],
        image_service_url=services["image"],
        rlm_service_url=services["rlm"],
        web_dir=tmp_path,
        internal_token=TEST_INTERNAL_TOKEN,
    )
    gateway = await aiohttp_client(create_gateway_app(settings))
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        assert answer_text(await read_events(response)) == "Hello from the fake model."
    config = await (await gateway.get("/api/config")).json()
    assert config["models"] == ["fake-model", "fake-vision"]


async def test_a_gateway_without_the_token_gets_nothing_through(
    services: dict[str, str], aiohttp_client, tmp_path
) -> None:
    settings = GatewaySettings(chat_service_url=services["chat"], web_dir=tmp_path)
    gateway = await aiohttp_client(create_gateway_app(settings))
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        assert response.status == 401


def test_the_token_can_come_from_a_file(tmp_path) -> None:
    secret = tmp_path / "internal_token"
    secret.write_text(TEST_INTERNAL_TOKEN + "\n")
    settings = ImageSettings(internal_token_file=str(secret))
    assert settings.bearer_token == TEST_INTERNAL_TOKEN


@pytest.mark.parametrize("package", ["tinychat_chat", "tinychat_image", "tinychat_rlm"])
def test_an_internal_service_without_a_token_refuses_to_listen_beyond_loopback(package: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERNAL_", "HOST", "PORT"))}
    env.update({"HOST": "0.0.0.0", "PORT": closed_port_url().rsplit(":", 1)[1], "IMAGE_PROVIDER": "none"})
    done = subprocess.run(
        [sys.executable, "-m", package], env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "INTERNAL_TOKEN is not set" in done.stderr
