"""A model's reasoning, in each shape servers send it, becomes `reasoning` events — never
part of the answer, and never sent back to the model in the next request."""

from __future__ import annotations

import pytest
from tinychat_chat.openai_stream import OpenAIStreamParser
from tinychat_chat.reasoning import ThinkSplitter, strip_leading_think

from tests.fakes.openai_upstream import REASONING_DIALECTS, FakeOpenAI, Reply
from tests.support.messages import user
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(15)

THOUGHTS = ["The user greets me. ", "I should greet back."]


def reasoning_text(events: list[dict]) -> str:
    return "".join(e["reasoning"] for e in events if "reasoning" in e)


def kinds(events: list[dict]) -> list[str]:
    """The order of event kinds, runs collapsed: ["reasoning", "content", "done"]."""
    order: list[str] = []
    for event in events:
        kind = "done" if event.get("done") else next(iter(event))
        if not order or order[-1] != kind:
            order.append(kind)
    return order


@pytest.mark.parametrize("dialect", sorted(REASONING_DIALECTS))
async def test_each_reasoning_field_becomes_reasoning_events_before_the_answer(
    chat_client, fake_openai: FakeOpenAI, dialect: str
):
    fake_openai.enqueue(Reply(text="Hello there.", reasoning=THOUGHTS, dialect=dialect))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    assert reasoning_text(events) == "".join(THOUGHTS)
    assert answer_text(events) == "Hello there."
    assert kinds(events) == ["reasoning", "content", "done"]


async def test_a_think_tag_cut_across_three_chunks_is_split_out_of_the_answer(
    chat_client, fake_openai: FakeOpenAI
):
    chunks = ["<th", "in", "k>Let me think", " about it.</th", "ink>", "\n\nThe answer", " is 4."]
    fake_openai.enqueue(Reply(chunks=chunks))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("2+2?")]}))
    assert reasoning_text(events) == "Let me think about it."
    assert answer_text(events) == "The answer is 4."
    assert "<" not in answer_text(events)


async def test_reasoning_with_no_content_ends_with_done_and_an_empty_answer(
    chat_client, fake_openai: FakeOpenAI
):
    fake_openai.enqueue(Reply(chunks=[], reasoning=THOUGHTS, finish_reason="length"))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    assert reasoning_text(events) == "".join(THOUGHTS)
    assert answer_text(events) == ""
    assert events[-1]["done"] is True and events[-1]["finish_reason"] == "length"


async def test_content_with_no_reasoning_has_no_reasoning_events(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(text="Plain answer, <think> mentioned later is kept."))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    assert not any("reasoning" in e for e in events)
    assert answer_text(events) == "Plain answer, <think> mentioned later is kept."


async def test_an_unterminated_think_block_is_reasoning_not_answer(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(chunks=["<think>still ", "going"], finish_reason="length"))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    assert reasoning_text(events) == "still going"
    assert answer_text(events) == ""


async def test_reasoning_never_reaches_the_next_requests_history(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(text="Four.", reasoning=THOUGHTS))
    first = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("2+2?")]}))
    answer = answer_text(first)
    # What the browser sends next: the answer's content only (the public model forbids more).
    history = [user("2+2?"), {"role": "assistant", "content": answer}, user("and 3+3?")]
    await read_events(await chat_client.post("/v1/chat/stream", json={"messages": history}))
    sent = fake_openai.history[-1]["messages"]
    assert sent[1] == {"role": "assistant", "content": "Four."}
    assert "greet" not in str(sent)


async def test_an_answer_that_still_holds_its_think_block_is_sent_back_without_it(
    chat_client, fake_openai: FakeOpenAI
):
    history = [
        user("2+2?"),
        {"role": "assistant", "content": "<think>secret musing</think>\n\nFour."},
        user("and 3+3?"),
    ]
    await read_events(await chat_client.post("/v1/chat/stream", json={"messages": history}))
    assert fake_openai.history[-1]["messages"][1] == {"role": "assistant", "content": "Four."}


async def test_a_reasoning_field_is_refused_in_a_request_message(chat_client, fake_openai: FakeOpenAI):
    body = {"messages": [{"role": "assistant", "content": "x", "reasoning": "y"}, user("hi")]}
    response = await chat_client.post("/v1/chat/stream", json=body)
    assert response.status == 400
    assert fake_openai.history == []


async def test_complete_returns_reasoning_apart_from_content(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(chunks=["<think>", "hmm</think>", "Yes."]))
    response = await chat_client.post("/v1/chat/complete", json={"messages": [user("ok?")]})
    body = await response.json()
    assert body["content"] == "Yes."
    assert body["reasoning"] == "hmm"


@pytest.mark.parametrize(
    ("chunks", "reasoning", "answer"),
    [
        (["<think>a</think>b"], "a", "b"),
        (["\n  <think>", "a", "</think>", "\n", "b"], "a", "b"),
        (["<", "t", "h", "i", "n", "k", ">", "a", "<", "/", "think", ">", "b"], "a", "b"),
        (["<thin", "g>x"], "", "<thing>x"),
        (["<b>bold</b>"], "", "<b>bold</b>"),
        (["a < b", " <think>no</think>"], "", "a < b <think>no</think>"),
        (["<think>x </thinking> y</think>z"], "x </thinking> y", "z"),
        (["   "], "", "   "),
        (["<thi"], "", "<thi"),
    ],
)
def test_think_splitter_handles_any_cut(chunks: list[str], reasoning: str, answer: str):
    splitter = ThinkSplitter()
    thoughts, texts = [], []
    for chunk in chunks:
        thought, text = splitter.feed(chunk)
        thoughts.append(thought)
        texts.append(text)
    thought, text = splitter.close()
    assert "".join(thoughts) + thought == reasoning
    assert "".join(texts) + text == answer


def test_the_parser_reads_reasoning_from_bytes_split_anywhere():
    frames = (
        b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"deep"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":null,"reasoning":"er"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"done"},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    parser = OpenAIStreamParser()
    reasoning, content = [], []
    for i in range(0, len(frames), 7):
        content.append(parser.feed(frames[i : i + 7]))
        reasoning.append(parser.take_reasoning())
    content.append(parser.close())
    reasoning.append(parser.take_reasoning())
    assert "".join(reasoning) == "deeper"
    assert "".join(content) == "done"


def test_strip_leading_think_keeps_other_text():
    assert strip_leading_think("<think>x</think>\n\nAnswer") == "Answer"
    assert strip_leading_think("Answer <think>x</think>") == "Answer <think>x</think>"
    assert strip_leading_think("<think>never closed") == ""


@pytest.mark.parametrize("text", ["plain", 'quote " and \\ backslash', "ünïcode ✓", "\ud800 lone surrogate"])
def test_a_reasoning_frame_is_the_same_bytes_as_encoding_its_dict(text: str):
    from tinychat_common import sse
    from tinychat_common.events import Reasoning

    assert sse.encode(Reasoning(text)) == sse.encode_data({"reasoning": text})
