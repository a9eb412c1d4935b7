"""Cross-site and DNS-rebinding requests, as an attacker's page would send them, are
refused before they reach a service; curl and the gateway's own page keep working."""

from __future__ import annotations

import pytest

from tests.fakes.tinychat_service import FakeService
from tests.gateway.conftest import GatewayFactory
from tests.support.messages import chat_body

pytestmark = pytest.mark.timeout(20)

EVIL = "https://evil.example"
RLM_BODY = '{"messages": [{"role": "user", "content": "run this"}], "rlm": true}'


async def test_the_audit_request_text_plain_from_evil_with_a_rebound_host_runs_nothing(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    gateway = await make_gateway()
    headers = {"Content-Type": "text/plain", "Origin": EVIL, "Host": "rebound.evil.example"}
    async with gateway.post("/api/chat/stream", data=RLM_BODY, headers=headers) as response:
        assert response.status == 403
        assert (await response.json())["error"] == "host_not_allowed"
    assert rlm_service.history == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_a_body_a_page_may_post_across_sites_is_refused(
    make_gateway: GatewayFactory, rlm_service: FakeService, content_type: str
) -> None:
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", data=RLM_BODY, headers={"Content-Type": content_type}) as r:
        assert r.status == 415
        assert (await r.json())["error"] == "unsupported_media_type"
    assert rlm_service.history == []


async def test_another_sites_origin_is_refused_even_with_json(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", json=chat_body("x", rlm=True), headers={"Origin": EVIL}) as r:
        assert r.status == 403
        assert (await r.json())["error"] == "cross_site"
    assert rlm_service.history == []


async def test_sec_fetch_site_cross_site_without_origin_is_refused(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    headers = {"Sec-Fetch-Site": "cross-site"}
    async with gateway.post("/api/chat/stream", json=chat_body(), headers=headers) as response:
        assert response.status == 403


async def test_the_gateways_own_origin_and_listed_origins_are_served(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(allowed_origins="https://app.example.com")
    own = f"http://{gateway.host}:{gateway.port}"
    for origin in (own, "https://app.example.com"):
        headers = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        async with gateway.post("/api/chat/stream", json=chat_body(), headers=headers) as response:
            assert response.status == 200, origin
            await response.read()


async def test_curl_without_origin_keeps_working(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    async with gateway.post("/api/chat/stream", json=chat_body(), headers={"User-Agent": "curl/8.5"}) as r:
        assert r.status == 200
        await r.read()


@pytest.mark.parametrize("host", ["rebound.evil.example", "evil.example:8000", "10.0.0.5:8000"])
async def test_a_host_not_allowed_is_refused_everywhere_but_the_probes(
    make_gateway: GatewayFactory, host: str
) -> None:
    gateway = await make_gateway()
    for path in ("/api/config", "/", "/index.html"):
        async with gateway.get(path, headers={"Host": host}) as response:
            assert response.status == 403, path
    async with gateway.get("/healthz", headers={"Host": host}) as response:
        assert response.status == 200


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"])
async def test_loopback_names_are_allowed_by_default(make_gateway: GatewayFactory, host: str) -> None:
    gateway = await make_gateway()
    async with gateway.get("/api/config", headers={"Host": host}) as response:
        assert response.status == 200


async def test_public_url_and_allowed_hosts_add_names(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(public_url="https://chat.example.com", allowed_hosts="lan-box")
    for host, status in (("chat.example.com", 200), ("lan-box:8000", 200), ("localhost", 403)):
        async with gateway.get("/api/config", headers={"Host": host}) as response:
            assert response.status == status, host
    # The public page's origin is https while the gateway behind the proxy sees http.
    headers = {"Host": "chat.example.com", "Origin": "https://chat.example.com"}
    async with gateway.post("/api/chat/stream", json=chat_body(), headers=headers) as response:
        assert response.status == 200
        await response.read()


async def test_allowed_hosts_star_accepts_any_host(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(allowed_hosts="*")
    async with gateway.get("/api/config", headers={"Host": "anything.example"}) as response:
        assert response.status == 200


async def test_a_link_from_another_site_still_opens_the_page(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    headers = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    async with gateway.get("/", headers=headers) as response:
        assert response.status == 200
