"""The RLM passcode: checked at the gateway, with a per-client limit on wrong guesses."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.tinychat_service import FakeService
from tests.gateway.conftest import GatewayFactory
from tests.support.messages import chat_body
from tests.support.sse import assert_ends_with_one_done, read_events

pytestmark = pytest.mark.timeout(20)

PASSCODE = "correct horse battery staple"


async def rlm_stream(
    gateway: aiohttp.ClientSession, header: str | None = None, **body: str
) -> aiohttp.ClientResponse:
    headers = {"X-RLM-Passcode": header} if header is not None else {}
    return await gateway.post("/api/chat/stream", json=chat_body("go", rlm=True, **body), headers=headers)


@pytest.mark.parametrize(
    ("header", "body"), [(None, {}), ("wrong", {}), ("", {}), (None, {"rlm_passcode": "nope"})]
)
async def test_missing_or_wrong_passcode_is_401_and_reaches_no_service(
    make_gateway: GatewayFactory, rlm_service: FakeService, header: str | None, body: dict
) -> None:
    gateway = await make_gateway(rlm_passcode=PASSCODE)
    response = await rlm_stream(gateway, header, **body)
    assert response.status == 401
    answer = await response.json()
    assert answer["error"] == "invalid_passcode"
    assert "passcode" in answer["detail"]
    assert PASSCODE not in answer["detail"]
    assert rlm_service.history == []


@pytest.mark.parametrize(("header", "body"), [(PASSCODE, {}), (None, {"rlm_passcode": PASSCODE})])
async def test_right_passcode_in_header_or_body_starts_the_job(
    make_gateway: GatewayFactory, rlm_service: FakeService, header: str | None, body: dict
) -> None:
    gateway = await make_gateway(rlm_passcode=PASSCODE)
    response = await rlm_stream(gateway, header, **body)
    assert_ends_with_one_done(await read_events(response))
    assert len(rlm_service.history) == 1


async def test_no_passcode_configured_lets_rlm_through(
    gateway: aiohttp.ClientSession, rlm_service: FakeService
) -> None:
    response = await rlm_stream(gateway)
    assert_ends_with_one_done(await read_events(response))
    async with gateway.post("/api/rlm/validate") as response:
        assert response.status == 200
        assert await response.json() == {"valid": True, "passcode_required": False}


async def test_passcode_is_not_asked_for_plain_chat(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(rlm_passcode=PASSCODE)
    async with gateway.post("/api/chat/stream", json=chat_body("hi")) as response:
        assert_ends_with_one_done(await read_events(response))


async def test_validate_endpoint_accepts_header_or_body(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(rlm_passcode=PASSCODE)
    async with gateway.post("/api/rlm/validate", headers={"X-RLM-Passcode": PASSCODE}) as response:
        assert await response.json() == {"valid": True, "passcode_required": True}
    async with gateway.post("/api/rlm/validate", json={"passcode": PASSCODE}) as response:
        assert response.status == 200
    async with gateway.post("/api/rlm/validate", json={"passcode": "guess"}) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_passcode"
    async with gateway.post("/api/rlm/validate", json={"passcode": PASSCODE, "extra": 1}) as response:
        assert response.status == 400


async def test_failed_attempts_are_limited_per_client_even_for_the_right_passcode(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    gateway = await make_gateway(
        rlm_passcode=PASSCODE, rlm_passcode_max_failures=3, rlm_passcode_window_seconds=120
    )
    for guess in ("a", "b", "c"):
        async with gateway.post("/api/rlm/validate", json={"passcode": guess}) as response:
            assert response.status == 401
    async with gateway.post("/api/rlm/validate", json={"passcode": PASSCODE}) as response:
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 120
        answer = await response.json()
    assert answer["error"] == "too_many_attempts"
    response = await rlm_stream(gateway, PASSCODE)
    assert response.status == 429
    assert rlm_service.history == []
    metrics = await (await gateway.get("/metrics")).text()
    assert "tinychat_gateway_passcode_failures_total 5.0" in metrics


async def test_failure_limit_is_per_client_address(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(
        rlm_passcode=PASSCODE, rlm_passcode_max_failures=1, trusted_proxies="127.0.0.1/32"
    )
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    async with gateway.post("/api/rlm/validate", json={"passcode": "x"}, headers=attacker) as response:
        assert response.status == 401
    async with gateway.post("/api/rlm/validate", json={"passcode": "x"}, headers=attacker) as response:
        assert response.status == 429
    user = {"X-Forwarded-For": "198.51.100.7", "X-RLM-Passcode": PASSCODE}
    async with gateway.post("/api/rlm/validate", headers=user) as response:
        assert response.status == 200


async def test_passcode_guesses_from_many_addresses_hit_the_global_budget(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(
        rlm_passcode=PASSCODE, rlm_passcode_global_max_failures=4, trusted_proxies="127.0.0.1/32"
    )
    statuses = []
    for i in range(6):
        headers = {"X-Forwarded-For": f"203.0.113.{i}", "X-RLM-Passcode": "guess"}
        async with gateway.post("/api/rlm/validate", headers=headers) as response:
            statuses.append(response.status)
    assert statuses == [401] * 4 + [429] * 2


async def test_100_passcode_guesses_over_one_ipv6_64_are_5_checks(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(rlm_passcode=PASSCODE, trusted_proxies="127.0.0.1/32")
    statuses = []
    for i in range(1, 101):
        headers = {"X-Forwarded-For": f"2001:db8:7:7::{i:x}", "X-RLM-Passcode": "guess"}
        async with gateway.post("/api/rlm/validate", headers=headers) as response:
            statuses.append(response.status)
    assert statuses == [401] * 5 + [429] * 95
