"""The OpenAPI document's StreamEvent and the typed stream events are the same set: every key
an event the code can emit writes is described, every described key is written by an event,
and every event, as the one SSE encoder writes it, validates against the schema."""

from __future__ import annotations

import typing
from typing import Any

from jsonschema import Draft202012Validator
from tinychat_common import events, sse
from tinychat_gateway.openapi import build_openapi

from tests.support.sse import decode_events

# One of each event type, with every optional part filled in.
SAMPLES: dict[type, events.Event] = {
    events.Content: events.Content("Hi"),
    events.Reasoning: events.Reasoning("Let me think."),
    events.Status: events.Status("Generating image…"),
    events.ImageResult: events.ImageResult("data:image/png;base64,iVBORw0KGgo=", "a fox", "Here it is."),
    events.RlmStep: events.RlmStep({"kind": "code", "iteration": 1, "code": "print(1)"}),
    events.Error: events.Error("The model API failed.", "upstream_error"),
    events.Done: events.Done("stop", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
}


def stream_event_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = build_openapi("test")
    return spec, spec["components"]["schemas"]["StreamEvent"]


def test_every_event_type_has_a_sample_here() -> None:
    assert set(typing.get_args(events.Event)) == set(SAMPLES)


def test_the_schema_describes_exactly_the_keys_the_events_write() -> None:
    _spec, schema = stream_event_schema()
    written = {key for sample in SAMPLES.values() for key in sample.as_dict()}
    assert set(schema["properties"]) == written


def test_every_event_as_encoded_validates_against_the_schema() -> None:
    spec, _schema = stream_event_schema()
    validator = Draft202012Validator({**spec, "$ref": "#/components/schemas/StreamEvent"})
    payloads = decode_events(sse.encode_many(list(SAMPLES.values())))
    assert len(payloads) == len(SAMPLES)
    for payload in payloads:
        validator.validate(payload)
        assert events.from_dict(payload) in SAMPLES.values()
