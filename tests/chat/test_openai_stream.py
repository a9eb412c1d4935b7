"""The OpenAI stream parser, fed bytes the way a network delivers them."""

from __future__ import annotations

import json

import pytest
from tinychat_chat.errors import UpstreamBadResponse
from tinychat_chat.openai_stream import OpenAIStreamParser
from tinychat_common.errors import UpstreamError

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.messages import user
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(15)


def delta(text: str, finish: str | None = None) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


STREAM = (
    delta("Hel")
    + delta("lo, ")
    + delta("wörld ✓")
    + delta("", finish="stop")
    + b'data: {"choices":[],"usage":{"total_tokens":9}}\n\n'
    + b"data: [DONE]\n\n"
)


def feed_all(parser: OpenAIStreamParser, pieces: list[bytes]) -> str:
    text = "".join(parser.feed(piece) for piece in pieces) + parser.close()
    parser.raise_failure()
    return text


def test_a_whole_stream_gives_text_finish_reason_and_usage():
    parser = OpenAIStreamParser()
    assert feed_all(parser, [STREAM]) == "Hello, wörld ✓"
    assert parser.finish_reason == "stop"
    assert parser.usage == {"total_tokens": 9}
    assert parser.done and parser.complete


def test_events_split_at_every_byte_give_the_same_text():
    parser = OpenAIStreamParser()
    assert feed_all(parser, [STREAM[i : i + 1] for i in range(len(STREAM))]) == "Hello, wörld ✓"
    assert parser.usage == {"total_tokens": 9} and parser.done


def test_crlf_line_endings_are_understood():
    parser = OpenAIStreamParser()
    assert feed_all(parser, [STREAM.replace(b"\n", b"\r\n")]) == "Hello, wörld ✓"
    assert parser.finish_reason == "stop"


def test_comment_lines_and_other_fields_are_ignored():
    stream = (
        b": OPENROUTER PROCESSING\n\nevent: message\nid: 7\n"
        + delta("hi")
        + b": ping\n\n"
        + b"data: [DONE]\n\n"
    )
    assert feed_all(OpenAIStreamParser(), [stream]) == "hi"


def test_json_spread_over_several_data_lines_is_joined():
    stream = b'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "joined"}}]}\n\ndata: [DONE]\n\n'
    assert feed_all(OpenAIStreamParser(), [stream]) == "joined"


def test_nothing_after_done_counts():
    parser = OpenAIStreamParser()
    assert (
        feed_all(parser, [delta("kept") + b"data: [DONE]\n\n" + delta("ignored") + b"data: garbage\n\n"])
        == "kept"
    )


def test_a_last_event_without_its_blank_line_still_counts():
    parser = OpenAIStreamParser()
    assert feed_all(parser, [delta("a") + delta("b", finish="stop").rstrip(b"\n")]) == "ab"
    assert parser.finish_reason == "stop" and parser.complete


def test_a_stream_without_done_or_finish_reason_is_not_complete():
    parser = OpenAIStreamParser()
    feed_all(parser, [delta("half")])
    assert not parser.complete


def test_an_error_event_fails_after_the_text_before_it():
    parser = OpenAIStreamParser()
    text = parser.feed(
        delta("before") + b'data: {"error": {"message": "Overloaded", "type": "server_error"}}\n\n'
    )
    assert text == "before"
    with pytest.raises(UpstreamError, match="Overloaded"):
        parser.raise_failure()


def test_an_error_given_as_a_plain_string_is_read_too():
    parser = OpenAIStreamParser()
    parser.feed(b'data: {"error": "quota exhausted"}\n\n')
    with pytest.raises(UpstreamError, match="quota exhausted"):
        parser.raise_failure()


@pytest.mark.parametrize("payload", [b"data: not json\n\n", b"data: [1, 2]\n\n", b'data: "text"\n\n'])
def test_data_that_is_not_a_json_object_is_a_bad_response(payload):
    parser = OpenAIStreamParser()
    parser.feed(payload)
    with pytest.raises(UpstreamBadResponse):
        parser.raise_failure()


def test_secrets_are_scrubbed_from_relayed_upstream_text():
    parser = OpenAIStreamParser(scrub=lambda text: text.replace("sk-abc", "***"))
    parser.feed(b'data: {"error": {"message": "bad key sk-abc"}}\n\n')
    with pytest.raises(UpstreamError) as caught:
        parser.raise_failure()
    assert "sk-abc" not in caught.value.message and "***" in caught.value.message


def test_null_content_and_other_choices_are_skipped():
    stream = (
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}\n\n'
        b'data: {"choices":[{"index":1,"delta":{"content":"other"}}]}\n\n'
        + delta("mine")
        + b"data: [DONE]\n\n"
    )
    assert feed_all(OpenAIStreamParser(), [stream]) == "mine"


async def test_events_split_across_network_reads_arrive_whole(chat_client, fake_openai: FakeOpenAI):
    raw = STREAM.replace(b"\n", b"\r\n")
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    fake_openai.enqueue(Reply(raw=pieces, chunk_delay=0.001))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    assert answer_text(events) == "Hello, wörld ✓"
    assert events[-1] == {"done": True, "finish_reason": "stop", "usage": {"total_tokens": 9}}


async def test_ttft_and_relayed_events_are_measured(chat_client, fake_openai: FakeOpenAI):
    await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    metrics = await (await chat_client.get("/metrics")).text()
    assert 'tinychat_chat_ttft_seconds_count{model="fake-model"} 1.0' in metrics
    assert "tinychat_chat_events_relayed_total " in metrics
    assert 'tinychat_chat_completions_total{model="fake-model",outcome="stop"} 1.0' in metrics
