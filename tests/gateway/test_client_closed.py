"""A user pressing Stop closes the connection mid-answer: a normal end, logged at debug and
counted as 499 ("client closed"), never an unhandled error or a 500."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fakes.tinychat_service import FakeService, Script, frame
from tests.gateway.conftest import GatewayFactory
from tests.support.messages import chat_body
from tests.support.polling import wait_until


def _request_counts(metrics: str, route: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("tinychat_http_requests_total{") and f'route="{route}"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[status] = counts.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return counts


async def test_stop_mid_stream_is_logged_at_debug_and_counted_as_client_closed(
    make_gateway: GatewayFactory, rlm_service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    for package in ("tinychat_gateway", "tinychat_common"):
        caplog.set_level(logging.DEBUG, logger=package)
    rlm_service.enqueue(Script(writes=[frame({"status": "RLM iteration 1/20"})], then="stall"))
    gateway = await make_gateway()
    response = await gateway.post("/api/chat/stream", json=chat_body("go", rlm=True))
    await response.content.readuntil(b"\n\n")
    response.close()
    await asyncio.wait_for(rlm_service.disconnected.wait(), 5)

    async def counted() -> dict[str, float]:
        return _request_counts(await (await gateway.get("/metrics")).text(), "/api/chat/stream")

    await wait_until(lambda: _has_status(counted(), "499"), "the stop counted as 499")
    counts = await counted()
    assert "500" not in counts, counts
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any(r.levelno == logging.DEBUG and "client went away" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]


async def _has_status(counts_coro: object, status: str) -> bool:
    counts = await counts_coro  # type: ignore[misc]
    return status in counts


async def test_stop_while_the_gateway_writes_is_counted_as_client_closed(
    make_gateway: GatewayFactory, image_service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    # The service keeps talking after the client left: the gateway's next write fails.
    steps = [frame({"status": f"Generating image… {i}%"}) for i in range(200)]
    image_service.enqueue(Script(writes=steps, delay=0.02))
    gateway = await make_gateway()
    response = await gateway.post("/api/chat/stream", json=chat_body("/image a cat"))
    await response.content.readuntil(b"\n\n")
    response.close()
    await asyncio.wait_for(image_service.disconnected.wait(), 10)
    metrics_text = ""

    async def counted_499() -> bool:
        nonlocal metrics_text
        metrics_text = await (await gateway.get("/metrics")).text()
        return "499" in _request_counts(metrics_text, "/api/chat/stream")

    await wait_until(counted_499, "the stop counted as 499")
    assert "500" not in _request_counts(metrics_text, "/api/chat/stream")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
