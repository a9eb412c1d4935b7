"""CORS only for listed origins; per-client rate limits with Retry-After."""

from __future__ import annotations

import aiohttp
import pytest
from tinychat_gateway.config import GatewaySettings
from tinychat_gateway.ratelimit import SlidingWindow

from tests.fakes.tinychat_service import FakeService
from tests.gateway.conftest import GatewayFactory
from tests.support.messages import chat_body
from tests.support.sse import assert_ends_with_one_done, read_events

pytestmark = pytest.mark.timeout(20)

ORIGIN = "https://chat.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


async def test_cors_is_off_without_allowed_origins(gateway: aiohttp.ClientSession) -> None:
    # Another site's page may not even read the API (see test_access.py).
    async with gateway.get("/api/config", headers={"Origin": ORIGIN}) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    async with gateway.options("/api/chat/stream", headers=PREFLIGHT) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert response.status >= 400


async def test_cors_allows_listed_origins_only(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(allowed_origins=f"{ORIGIN}, http://localhost:3000")
    async with gateway.options("/api/chat/stream", headers=PREFLIGHT) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "X-RLM-Passcode" in response.headers["Access-Control-Allow-Headers"]
    async with gateway.get("/api/config", headers={"Origin": ORIGIN}) as response:
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert response.headers["Vary"] == "Origin"
    async with gateway.post("/api/chat/stream", json=chat_body("/image"), headers={"Origin": ORIGIN}) as r:
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        await r.read()
    evil = {**PREFLIGHT, "Origin": "https://evil.example"}
    async with gateway.options("/api/chat/stream", headers=evil) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    async with gateway.get("/api/config", headers={"Origin": "https://evil.example"}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers


def test_bad_settings_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="origin"):
        GatewaySettings(allowed_origins="chat.example.com")
    with pytest.raises(ValueError, match="CIDR"):
        GatewaySettings(trusted_proxies="10.0.0.0/8, not-a-network")
    with pytest.raises(ValueError, match="http"):
        GatewaySettings(chat_service_url="ftp://chat")


async def test_image_requests_over_the_limit_get_429_with_retry_after(
    make_gateway: GatewayFactory, image_service: FakeService
) -> None:
    gateway = await make_gateway(rate_limit_image=2)
    for _ in range(2):
        async with gateway.post("/api/chat/stream", json=chat_body("/image a cat")) as response:
            assert_ends_with_one_done(await read_events(response))
    async with gateway.post("/api/chat/stream", json=chat_body("/image a cat")) as response:
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        answer = await response.json()
    assert answer["error"] == "rate_limited"
    assert "2 a minute" in answer["detail"]
    assert len(image_service.history) == 2
    # Plain chat is not limited by default.
    for _ in range(3):
        async with gateway.post("/api/chat/stream", json=chat_body("hi")) as response:
            assert response.status == 200
            await response.read()


async def test_rlm_and_chat_limits_apply_when_configured(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    gateway = await make_gateway(rate_limit_rlm=1, rate_limit_chat=1)
    assert (await gateway.post("/api/chat/stream", json=chat_body("x", rlm=True))).status == 200
    assert (await gateway.post("/api/chat/stream", json=chat_body("x", rlm=True))).status == 429
    assert (await gateway.post("/api/chat/stream", json=chat_body("x"))).status == 200
    assert (await gateway.post("/api/chat/stream", json=chat_body("x"))).status == 429
    metrics = await (await gateway.get("/metrics")).text()
    assert 'tinychat_gateway_rate_limited_total{kind="rlm"} 1.0' in metrics


async def test_forwarded_address_counts_only_behind_a_trusted_proxy(make_gateway: GatewayFactory) -> None:
    untrusted = await make_gateway(rate_limit_image=1)
    first = {"X-Forwarded-For": "203.0.113.1"}
    second = {"X-Forwarded-For": "203.0.113.2"}
    assert (await untrusted.post("/api/chat/stream", json=chat_body("/image a"), headers=first)).status == 200
    # Spoofing the header from an untrusted peer does not buy a fresh limit.
    assert (
        await untrusted.post("/api/chat/stream", json=chat_body("/image a"), headers=second)
    ).status == 429

    proxied = await make_gateway(rate_limit_image=1, trusted_proxies="127.0.0.0/8")
    assert (await proxied.post("/api/chat/stream", json=chat_body("/image a"), headers=first)).status == 200
    assert (await proxied.post("/api/chat/stream", json=chat_body("/image a"), headers=second)).status == 200
    assert (await proxied.post("/api/chat/stream", json=chat_body("/image a"), headers=first)).status == 429
    # A client cannot spoof past the proxy: the right-most untrusted hop is the client.
    spoofed = {"X-Forwarded-For": "198.51.100.50, 203.0.113.1"}
    assert (await proxied.post("/api/chat/stream", json=chat_body("/image a"), headers=spoofed)).status == 429


def test_sliding_window_frees_a_slot_as_old_requests_age_out() -> None:
    now = [1000.0]
    window = SlidingWindow(limit=2, window=60, clock=lambda: now[0])
    assert window.hit("a") == 0
    now[0] += 30
    assert window.hit("a") == 0
    assert window.hit("a") == pytest.approx(30)
    assert window.hit("b") == 0
    now[0] += 30.5
    assert window.hit("a") == 0
    now[0] += 120
    window.sweep()
    assert len(window) == 0
