"""Every way the model API can fail ends the stream with one readable error event and `done`."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply, openai_error
from tests.support.chat_service import TEST_API_KEY
from tests.support.messages import user
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(15)

SECRET = TEST_API_KEY


def assert_ends_with_one_error(events: list[dict[str, Any]], code: str) -> dict[str, Any]:
    """The last two events are the error and `done`; nothing secret or internal shows."""
    assert events[-1] == {"done": True, "finish_reason": "error", "usage": None}
    assert sum(1 for e in events if "done" in e) == 1
    errors = [e for e in events if "error" in e]
    assert len(errors) == 1 and events[-2] is errors[0]
    error = errors[0]
    assert error["code"] == code
    assert error["error"] and "Traceback" not in error["error"]
    text = str(events)
    assert SECRET not in text and "sk-test" not in text
    return error


async def stream(client, **body: Any) -> list[dict[str, Any]]:
    response = await client.post("/v1/chat/stream", json={"messages": [user("hi")], **body})
    return await read_events(response)


async def test_a_rejected_api_key_says_to_check_openai_api_key_and_never_echoes_it(
    chat_client, fake_openai: FakeOpenAI
):
    # OpenAI quotes part of the key in its 401 message; none of it may reach the client.
    fake_openai.enqueue(
        Reply(
            status=401,
            error_body=openai_error(f"Incorrect API key provided: {SECRET}.", code="invalid_api_key"),
        )
    )
    error = assert_ends_with_one_error(await stream(chat_client), "upstream_auth_failed")
    assert "OPENAI_API_KEY" in error["error"]


async def test_a_model_the_api_does_not_know_is_named_in_the_error(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(status=404, error_body=openai_error("The model `fake-vision` does not exist")))
    error = assert_ends_with_one_error(
        await stream(chat_client, model="fake-vision"), "upstream_model_not_found"
    )
    assert "fake-vision" in error["error"]


async def test_rate_limiting_passes_on_the_providers_reason(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(status=429, error_body=openai_error("You exceeded your current quota")))
    error = assert_ends_with_one_error(await stream(chat_client), "upstream_rate_limited")
    assert "exceeded your current quota" in error["error"]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_names_the_status(chat_client, fake_openai: FakeOpenAI, status):
    fake_openai.enqueue(Reply(status=status, error_body={"detail": "overloaded"}))
    error = assert_ends_with_one_error(await stream(chat_client), "upstream_unavailable")
    assert str(status) in error["error"] and "overloaded" in error["error"]


async def test_a_server_error_with_a_non_json_body_is_still_readable(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(status=400, error_body=["not", "an", "object"]))
    error = assert_ends_with_one_error(await stream(chat_client), "upstream_rejected")
    assert "400" in error["error"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_connection_refused_names_the_host_but_not_the_credentials(client_with):
    url = f"http://user:hunter22secret@127.0.0.1:{closed_port()}/v1"
    client = await client_with(openai_api_url=url)
    events = await stream(client)
    error = assert_ends_with_one_error(events, "upstream_unavailable")
    assert "127.0.0.1" in error["error"]
    assert "hunter22secret" not in str(events) and "user:" not in str(events)


async def test_a_reset_mid_stream_keeps_the_text_so_far_then_errors(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(text="one two three four", reset_after=2, chunk_delay=0.01))
    events = await stream(chat_client)
    assert answer_text(events) == "one two"
    assert_ends_with_one_error(events, "upstream_connection_lost")


async def test_no_first_byte_within_the_timeout_is_a_timeout_error(client_with, fake_openai: FakeOpenAI):
    client = await client_with(upstream_first_byte_timeout=0.2)
    fake_openai.enqueue(Reply(first_byte_delay=3.0))
    error = assert_ends_with_one_error(await stream(client), "upstream_timeout")
    assert "0.2 s" in error["error"]


async def test_headers_without_a_body_count_against_the_first_byte_timeout(client_with, fake_openai):
    client = await client_with(upstream_first_byte_timeout=0.2, upstream_idle_timeout=5)
    fake_openai.enqueue(Reply(raw=[b"", b'data: {"choices":[]}\n\n'], chunk_delay=3.0))
    assert_ends_with_one_error(await stream(client), "upstream_timeout")


async def test_silence_mid_stream_beyond_the_idle_timeout_is_a_stall_error(client_with, fake_openai):
    client = await client_with(upstream_idle_timeout=0.2)
    fake_openai.enqueue(Reply(text="one two three", stall_after=2))
    events = await stream(client)
    assert answer_text(events) == "one two"
    error = assert_ends_with_one_error(events, "upstream_stalled")
    assert "0.2 s" in error["error"]
    await fake_openai.disconnected.wait()  # the stalled request was closed, not left open


async def test_data_that_is_not_json_is_a_bad_response_error(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(
        Reply(raw=[b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n', b"data: <html>oops\n\n"])
    )
    events = await stream(chat_client)
    assert answer_text(events) == "ok"
    error = assert_ends_with_one_error(events, "upstream_bad_response")
    assert "<html>oops" in error["error"]


async def test_an_error_object_sent_as_an_event_becomes_the_error_event(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(
        Reply(
            text="partial answer",
            error_event=openai_error(f"server overloaded (key {SECRET})", "server_error"),
        )
    )
    events = await stream(chat_client)
    assert answer_text(events) == "partial answer"
    error = assert_ends_with_one_error(events, "upstream_error")
    assert "server overloaded" in error["error"]


async def test_a_stream_that_ends_without_finish_or_done_is_reported_cut_off(chat_client, fake_openai):
    fake_openai.enqueue(Reply(raw=[b'data: {"choices":[{"index":0,"delta":{"content":"half"}}]}\n\n']))
    events = await stream(chat_client)
    assert answer_text(events) == "half"
    assert_ends_with_one_error(events, "upstream_connection_lost")


async def test_upstream_errors_are_counted_by_kind(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(status=503), Reply(status=503), Reply(status=429))
    for _ in range(3):
        await stream(chat_client)
    metrics = await (await chat_client.get("/metrics")).text()
    assert 'tinychat_chat_upstream_errors_total{kind="upstream_unavailable"} 2.0' in metrics
    assert 'tinychat_chat_upstream_errors_total{kind="upstream_rate_limited"} 1.0' in metrics


async def test_the_service_keeps_serving_after_a_failure(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(status=500), Reply(text="fine again"))
    assert_ends_with_one_error(await stream(chat_client), "upstream_unavailable")
    assert answer_text(await stream(chat_client)) == "fine again"


@pytest.mark.parametrize(
    "quoted",
    [
        "sk-test-s...1234",  # the way providers shorten a key
        "sk-AUDIT...-KEY",  # a key of another shape, shortened
        "sk-test-secret-k",  # its head only
        "ret-key-1234",  # its tail only
        "Bearer abc123.def456",  # a credential the provider echoed back
    ],
)
async def test_a_relayed_upstream_message_is_scrubbed_of_anything_like_a_key(
    chat_client, fake_openai: FakeOpenAI, quoted: str
):
    fake_openai.enqueue(Reply(status=400, error_body=openai_error(f"Bad request for key {quoted}, fix it")))
    events = await stream(chat_client)
    error = assert_ends_with_one_error(events, "upstream_rejected")
    assert quoted not in error["error"] and "fix it" in error["error"], error


async def test_a_line_of_20_mib_without_a_newline_is_cut_off_without_blocking_other_streams(
    chat_client, fake_openai: FakeOpenAI
):
    # 20 MiB without a newline in 64 KiB writes, while a second user's answer streams.
    huge = [b"data: "] + [b"x" * 65536] * 320
    fake_openai.respond_with(
        lambda body: (
            Reply(raw=huge) if body["messages"][-1]["content"] == "flood" else Reply(text="still fast")
        )
    )
    flood = asyncio.create_task(stream(chat_client, messages=[user("flood")]))
    other = await asyncio.wait_for(stream(chat_client), 10)
    assert answer_text(other) == "still fast"
    assert_ends_with_one_error(await asyncio.wait_for(flood, 10), "upstream_bad_response")
