"""Graceful shutdown of the gateway: not ready, new requests refused, open streams finish
within the grace period, and the rest end with an error event and `done`."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient
from tinychat_common.service import drain

from tests.fakes.tinychat_service import DONE, FakeService, Script, frame
from tests.gateway.conftest import GatewayFactory
from tests.support.messages import chat_body
from tests.support.sse import assert_ends_with_one_done, decode_events

pytestmark = pytest.mark.timeout(20)


async def open_stream(gateway: TestClient, text: str) -> tuple[object, bytes]:
    response = await gateway.post("/api/chat/stream", json=chat_body(text, rlm=True))
    assert response.status == 200
    return response, await response.content.readuntil(b"\n\n")


async def test_drain_refuses_new_work_lets_short_streams_finish_and_ends_the_rest(
    make_gateway: GatewayFactory, rlm_service: FakeService
) -> None:
    steps = [frame({"status": f"RLM iteration {n}/3"}) for n in (1, 2, 3)]
    finishing = Script(writes=[*steps, frame({"content": "All done."}), DONE], delay=0.2)
    stuck = Script(writes=[frame({"status": "RLM iteration 1/20"})], then="stall")
    rlm_service.enqueue(finishing, stuck)
    gateway = await make_gateway()
    short, short_head = await open_stream(gateway, "short job")
    long, long_head = await open_stream(gateway, "long job")

    draining = asyncio.create_task(drain(gateway.app, grace_seconds=1.5))
    await asyncio.sleep(0.05)
    ready = await gateway.get("/readyz")
    assert ready.status == 503
    refused = await gateway.post("/api/chat/stream", json=chat_body("new"))
    assert refused.status == 503
    assert (await refused.json())["error"] == "shutting_down"

    short_events = decode_events(short_head + await short.read())  # type: ignore[attr-defined]
    assert short_events[-2] == {"content": "All done."}
    assert not any("error" in e for e in short_events)
    assert_ends_with_one_done(short_events)

    long_events = decode_events(long_head + await long.read())  # type: ignore[attr-defined]
    assert long_events[1]["code"] == "shutting_down"
    assert_ends_with_one_done(long_events)
    assert long_events[-1]["finish_reason"] == "error"

    await asyncio.wait_for(draining, 5)
    # The service's request for the cut stream was closed too, not left hanging.
    await asyncio.wait_for(rlm_service.disconnected.wait(), 2)
    assert len(rlm_service.history) == 2
