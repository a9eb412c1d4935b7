"""POST /v1/chat/stream: the answer, the request the API gets, the ending."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.messages import user
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(15)

USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


async def test_answer_streams_as_content_events_then_done_with_usage(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(text="Hello there, friend."))
    response = await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]})
    events = await read_events(response)
    assert answer_text(events) == "Hello there, friend."
    assert events[-1] == {"done": True, "finish_reason": "stop", "usage": USAGE}
    assert sum(1 for e in events if e.get("done")) == 1


async def test_upstream_is_asked_to_stream_with_usage_default_model_and_key(
    chat_client, fake_openai: FakeOpenAI
):
    await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    sent = fake_openai.history[-1]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "fake-model"
    assert sent["temperature"] == 0.7
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert fake_openai.headers[-1]["Authorization"] == "Bearer sk-test-secret-key-1234"


async def test_temperature_zero_is_sent_as_zero(chat_client, fake_openai: FakeOpenAI):
    body = {"messages": [user("hi")], "temperature": 0, "model": "fake-vision"}
    await read_events(await chat_client.post("/v1/chat/stream", json=body))
    assert fake_openai.history[-1]["temperature"] == 0
    assert fake_openai.history[-1]["model"] == "fake-vision"


async def test_finish_reason_length_is_passed_on(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(text="cut short", finish_reason="length"))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    assert events[-1]["finish_reason"] == "length"


async def test_unknown_model_is_a_400_listing_the_models_before_any_upstream_call(
    chat_client, fake_openai: FakeOpenAI
):
    response = await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")], "model": "gpt-9"})
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "unknown_model"
    assert "gpt-9" in body["detail"] and "fake-model" in body["detail"] and "fake-vision" in body["detail"]
    assert fake_openai.history == []


async def test_one_message_over_the_limit_is_a_413_before_streaming(client_with, fake_openai: FakeOpenAI):
    client = await client_with(max_message_length=100)
    messages = [user("short"), {"role": "assistant", "content": "ok"}, user("x" * 101)]
    response = await client.post("/v1/chat/stream", json={"messages": messages})
    assert response.status == 413
    body = await response.json()
    assert body["error"] == "message_too_long"
    assert "Message 3" in body["detail"] and "100" in body["detail"]
    assert fake_openai.history == []


async def test_message_exactly_at_the_limit_is_accepted(client_with, fake_openai: FakeOpenAI):
    client = await client_with(max_message_length=100)
    events = await read_events(await client.post("/v1/chat/stream", json={"messages": [user("x" * 100)]}))
    assert events[-1]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messages": []}, "invalid_request"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "invalid_request"),
        ({"messages": [user("hi")], "surprise": 1}, "invalid_request"),
        ({"messages": [user("hi")], "temperature": 3}, "invalid_request"),
        ({"messages": [user("hi")], "max_tokens": 0}, "invalid_request"),
    ],
)
async def test_invalid_bodies_are_400_with_a_readable_detail(chat_client, fake_openai, body, code):
    response = await chat_client.post("/v1/chat/stream", json=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == code and answer["detail"]
    assert fake_openai.history == []


async def test_a_body_that_is_not_json_is_a_400(chat_client):
    response = await chat_client.post(
        "/v1/chat/stream", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"


async def test_stop_and_max_tokens_are_forwarded_for_internal_callers(chat_client, fake_openai: FakeOpenAI):
    body = {"messages": [user("hi")], "stop": ["```"], "max_tokens": 64}
    await read_events(await chat_client.post("/v1/chat/stream", json=body))
    assert fake_openai.history[-1]["stop"] == ["```"]
    assert fake_openai.history[-1]["max_tokens"] == 64


async def test_the_gateways_public_fields_are_accepted(chat_client, fake_openai: FakeOpenAI):
    body = {"messages": [user("hi")], "rlm": False, "show_rlm_thinking": True}
    events = await read_events(await chat_client.post("/v1/chat/stream", json=body))
    assert events[-1]["done"] is True
    assert "rlm" not in fake_openai.history[-1]


async def test_deltas_arriving_in_one_read_leave_as_one_event(chat_client, fake_openai: FakeOpenAI):
    frames = b"".join(
        b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n' % word for word in (b"a", b"b", b"c")
    )
    ending = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    fake_openai.enqueue(Reply(raw=[frames + ending]))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    # No usage from the API: chat-service estimates it and says so.
    estimate = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "estimated": True}
    assert events == [{"content": "abc"}, {"done": True, "finish_reason": "stop", "usage": estimate}]


async def test_keepalive_comments_flow_while_the_upstream_is_slow(client_with, fake_openai: FakeOpenAI):
    client = await client_with(keepalive_seconds=0.05)
    fake_openai.enqueue(Reply(text="slow answer", chunk_delay=0.3))
    response = await client.post("/v1/chat/stream", json={"messages": [user("hi")]})
    raw = await response.read()
    assert b": keepalive\n\n" in raw
    assert raw.endswith(b'"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}\n\n')


async def test_a_finished_answer_leaves_the_connection_open_for_the_next_request(
    chat_client, fake_openai: FakeOpenAI
):
    for _ in range(3):
        events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
        assert events[-1]["finish_reason"] == "stop"
    # One TCP connection for all three: no new handshake (with TLS, tens of ms) per answer.
    assert len(set(fake_openai.peers)) == 1 and len(fake_openai.peers) == 3
