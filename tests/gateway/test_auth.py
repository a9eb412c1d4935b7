"""AUTH_MODE password and header, attacked: no cookie, a forged or expired one, password
guessing from one address and from many, a header set by someone who is not the proxy."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from tinychat_chat.app import CHAT_LOG
from tinychat_chat.app import create_app as create_chat_app
from tinychat_gateway.auth import COOKIE, CookieSigner

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.tinychat_service import FakeService
from tests.gateway.conftest import GatewayFactory
from tests.support.chat_service import chat_settings_for
from tests.support.messages import chat_body
from tests.support.net import serve_app
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(30)

PASSWORD = "correct horse battery staple"
SECRET = "cookie-signing-secret-0123456789"
PASSWORD_MODE = {"auth_mode": "password", "auth_password": PASSWORD, "auth_secret": SECRET}


async def log_in(gateway: TestClient, password: str = PASSWORD, **headers: str) -> int:
    async with gateway.post("/api/auth/login", json={"password": password}, headers=headers) as response:
        return response.status


async def chat_status(gateway: TestClient, **kwargs: object) -> int:
    async with gateway.post("/api/chat/stream", json=chat_body(), **kwargs) as response:
        await response.read()
        return response.status


async def test_without_a_login_the_api_is_refused_and_pages_go_to_the_login(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(**PASSWORD_MODE)
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "login_required"
    for path in ("/api/config", "/api/health"):
        async with gateway.get(path) as response:
            assert response.status == 401, path
    async with gateway.get("/", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/login"
    async with gateway.get("/login") as response:
        assert response.status == 200 and "password" in await response.text()
    assert (await gateway.get("/healthz")).status == 200


async def test_the_right_password_sets_a_strict_httponly_expiring_cookie(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(**PASSWORD_MODE, auth_session_hours=2)
    assert await log_in(gateway, "wrong") == 401
    async with gateway.post("/api/auth/login", json={"password": PASSWORD}) as response:
        assert response.status == 200
        cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(2 * 3600)
    async with gateway.post("/api/chat/stream", json=chat_body()) as response:
        assert answer_text(await read_events(response)) == "Hello from the fake model."


async def test_any_replica_with_the_secret_accepts_the_cookie_and_none_without_it(
    make_gateway: GatewayFactory,
) -> None:
    first = await make_gateway(**PASSWORD_MODE)
    async with first.post("/api/auth/login", json={"password": PASSWORD}) as response:
        value = response.cookies[COOKIE].value
    other = await make_gateway(**PASSWORD_MODE)
    assert await chat_status(other, headers={"Cookie": f"{COOKIE}={value}"}) == 200
    stranger = await make_gateway(**{**PASSWORD_MODE, "auth_secret": "another-secret-0123456789abc"})
    assert await chat_status(stranger, headers={"Cookie": f"{COOKIE}={value}"}) == 401


async def test_a_forged_or_expired_cookie_is_refused(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(**PASSWORD_MODE)
    signer = CookieSigner([SECRET], 3600)
    expired, _ = signer.issue(now=time.time() - 7200)
    valid, _ = signer.issue()
    payload, signature = valid.split(".")
    tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    for value in (expired, tampered, payload, "garbage", valid + "x"):
        assert await chat_status(gateway, headers={"Cookie": f"{COOKIE}={value}"}) == 401, value
    assert await chat_status(gateway, headers={"Cookie": f"{COOKIE}={valid}"}) == 200


async def test_a_rotated_secret_keeps_old_cookies_until_it_is_removed(make_gateway: GatewayFactory) -> None:
    old, _ = CookieSigner([SECRET], 3600).issue()
    new_secret = "the-new-signing-secret-987654321"
    rotating = await make_gateway(**{**PASSWORD_MODE, "auth_secret": f"{new_secret},{SECRET}"})
    assert await chat_status(rotating, headers={"Cookie": f"{COOKIE}={old}"}) == 200
    async with rotating.post("/api/auth/login", json={"password": PASSWORD}) as response:
        fresh = response.cookies[COOKIE].value
    rotated = await make_gateway(**{**PASSWORD_MODE, "auth_secret": new_secret})
    assert await chat_status(rotated, headers={"Cookie": f"{COOKIE}={old}"}) == 401
    assert await chat_status(rotated, headers={"Cookie": f"{COOKIE}={fresh}"}) == 200


async def test_logout_clears_the_cookie(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(**PASSWORD_MODE)
    assert await log_in(gateway) == 200
    assert await chat_status(gateway) == 200
    async with gateway.post("/api/auth/logout") as response:
        assert response.status == 200
        assert response.cookies[COOKIE]["max-age"] == "0"
    assert await chat_status(gateway) == 401


async def test_password_guesses_are_limited_per_client(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(**PASSWORD_MODE, auth_max_failures=3, trusted_proxies="127.0.0.1/32")
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    assert [await log_in(gateway, f"guess {i}", **attacker) for i in range(3)] == [401] * 3
    assert await log_in(gateway, "guess 4", **attacker) == 429
    assert await log_in(gateway, PASSWORD, **attacker) == 429  # locked out even when right
    assert await log_in(gateway, PASSWORD, **{"X-Forwarded-For": "198.51.100.1"}) == 200


async def test_password_guesses_from_many_addresses_hit_the_global_budget(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(**PASSWORD_MODE, auth_global_max_failures=4, trusted_proxies="127.0.0.1/32")
    statuses = [await log_in(gateway, "guess", **{"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(6)]
    assert statuses == [401] * 4 + [429] * 2


async def test_ipv6_guesses_count_by_their_64(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(**PASSWORD_MODE, auth_max_failures=5, trusted_proxies="127.0.0.1/32")
    statuses = [
        await log_in(gateway, "guess", **{"X-Forwarded-For": f"2001:db8:1:2::{i:x}"}) for i in range(1, 101)
    ]
    assert statuses.count(401) == 5 and statuses[5:] == [429] * 95
    assert await log_in(gateway, PASSWORD, **{"X-Forwarded-For": "2001:db8:1:3::1"}) == 200


async def test_header_mode_believes_the_user_only_from_trusted_proxies(make_gateway: GatewayFactory) -> None:
    behind_proxy = await make_gateway(auth_mode="header", trusted_proxies="127.0.0.1/32")
    assert await chat_status(behind_proxy, headers={"X-Forwarded-User": "alice"}) == 200
    assert await chat_status(behind_proxy) == 401
    # The gateway reached directly, not through the proxy: the header is anyone's to set.
    direct = await make_gateway(auth_mode="header", trusted_proxies="10.9.0.0/16")
    assert await chat_status(direct, headers={"X-Forwarded-User": "alice"}) == 401


async def test_the_identity_keys_the_rate_limits(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    gateway = await make_gateway(auth_mode="header", trusted_proxies="127.0.0.1/32", rate_limit_image=1)

    async def image(user: str) -> int:
        headers = {"X-Forwarded-User": user}
        async with gateway.post("/api/chat/stream", json=chat_body("/image a fox"), headers=headers) as r:
            await r.read()
            return r.status

    assert [await image("alice"), await image("alice"), await image("bob")] == [200, 429, 200]
    assert image_service.history[0][2]["X-TinyChat-User"] == "alice"


async def test_the_identity_appears_in_chat_log(
    make_gateway: GatewayFactory, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    log_path = tmp_path / "chat.jsonl"
    runners: list[web.AppRunner] = []
    chat_app = create_chat_app(chat_settings_for(fake_openai, chat_log=str(log_path)))
    chat_url = await serve_app(chat_app, runners)
    try:
        gateway = await make_gateway(
            auth_mode="header", trusted_proxies="127.0.0.1/32", chat_service_url=chat_url
        )
        assert await chat_status(gateway, headers={"X-Forwarded-User": "carol@example.com"}) == 200
        await chat_app[CHAT_LOG].flush()
        entry = json.loads(log_path.read_text().splitlines()[-1])
        assert entry["user"] == "carol@example.com"
    finally:
        for runner in runners:
            await runner.cleanup()


def test_password_mode_without_a_password_or_secret_refuses_to_start() -> None:
    from pydantic import ValidationError
    from tinychat_gateway.config import GatewaySettings

    for values in ({"auth_mode": "password"}, {"auth_mode": "password", "auth_password": "x"}):
        with pytest.raises(ValidationError):
            GatewaySettings(**values)
    with pytest.raises(ValidationError):
        GatewaySettings(auth_mode="header")  # without TRUSTED_PROXIES anyone could set the header
