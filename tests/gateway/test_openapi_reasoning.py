"""The OpenAPI document describes the `reasoning` event, and every event chat-service sends
for a reasoning model matches the StreamEvent schema."""

from __future__ import annotations

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from tinychat_common import sse
from tinychat_common.events import Content, Done, Reasoning

from tests.support.sse import decode_events

pytestmark = pytest.mark.timeout(20)


async def test_the_stream_event_schema_has_a_reasoning_string(gateway: aiohttp.ClientSession) -> None:
    async with gateway.get("/api/openapi.json") as response:
        spec = await response.json()
    event = spec["components"]["schemas"]["StreamEvent"]
    assert "reasoning" in event["properties"]
    assert "never" in event["properties"]["reasoning"]["description"]
    validator = Draft202012Validator({**spec, "$ref": "#/components/schemas/StreamEvent"})
    raw = sse.encode_many(
        [Reasoning("hmm"), Content("Hi"), Done("stop", {"total_tokens": 3, "estimated": True})]
    )
    for payload in decode_events(raw):
        validator.validate(payload)
