"""Titles: one cheap non-streaming call through chat-service, cleaned up, and off for an
endpoint that bills (CHAT_TITLES, the endpoint's `titles`)."""

from __future__ import annotations

import json

import pytest
from tinychat_chat.titles import clean_title

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.messages import user

pytestmark = pytest.mark.timeout(15)

CONVERSATION = [
    user("How do I merge two sorted lists in Python?"),
    {"role": "assistant", "content": "Use heapq.merge."},
]


async def test_a_title_is_one_non_streaming_call_with_a_short_limit(client_with, fake_openai: FakeOpenAI):
    client = await client_with(chat_titles="on")
    fake_openai.enqueue(Reply(text='"Merging Sorted Lists in Python."'))
    response = await client.post("/v1/chat/title", json={"messages": CONVERSATION})
    assert response.status == 200
    assert await response.json() == {"title": "Merging Sorted Lists in Python"}
    sent = fake_openai.history[-1]
    assert sent["stream"] is False and sent["max_tokens"] == 48
    assert "heapq.merge" in sent["messages"][1]["content"]
    assert len(fake_openai.history) == 1


async def test_titles_are_off_by_default_for_an_endpoint_with_a_key(chat_client, fake_openai: FakeOpenAI):
    response = await chat_client.post("/v1/chat/title", json={"messages": CONVERSATION})
    assert response.status == 409
    assert (await response.json())["error"] == "titles_off"
    assert fake_openai.history == []


async def test_each_endpoint_says_whether_it_makes_titles(client_with, fake_openai: FakeOpenAI):
    endpoints = {
        "endpoints": [
            {"name": "paid", "url": fake_openai.url, "api_key": "sk-paid-0000", "models": ["fake-model"]},
            {"name": "free", "url": fake_openai.url, "models": ["fake-vision"], "titles": True},
        ]
    }
    client = await client_with(chat_endpoints=json.dumps(endpoints))
    groups = (await (await client.get("/v1/models")).json())["model_groups"]
    assert [(g["endpoint"], g["titles"]) for g in groups] == [("paid", False), ("free", True)]
    off = await client.post("/v1/chat/title", json={"messages": CONVERSATION, "model": "paid/fake-model"})
    assert off.status == 409
    fake_openai.enqueue(Reply(text="Sorted list merging"))
    on = await client.post("/v1/chat/title", json={"messages": CONVERSATION, "model": "free/fake-vision"})
    assert (await on.json())["title"] == "Sorted list merging"


async def test_a_model_without_temperature_gets_none_in_the_title_call(client_with, fake_openai: FakeOpenAI):
    quirks = {"fake-model": {"temperature": False, "max_tokens_param": "max_completion_tokens"}}
    client = await client_with(chat_titles="on", chat_model_settings=json.dumps(quirks))
    fake_openai.enqueue(Reply(text="A title"))
    await client.post("/v1/chat/title", json={"messages": CONVERSATION})
    sent = fake_openai.history[-1]
    assert "temperature" not in sent and sent["max_completion_tokens"] == 48


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("<think>the user asks about lists</think>\n\nList Merging", "List Merging"),
        ("Title: **Python Lists**\nmore text", "Python Lists"),
        ("  “Quoted”  ", "Quoted"),
        ("x" * 100, "x" * 59 + "…"),
        ("<think>only thoughts", ""),
    ],
)
def test_the_answer_is_cleaned_into_a_title(answer: str, title: str):
    assert clean_title(answer) == title


async def test_an_empty_title_is_an_error_not_a_blank_title(client_with, fake_openai: FakeOpenAI):
    client = await client_with(chat_titles="on")
    fake_openai.enqueue(Reply(chunks=["<think>hmm"]))
    response = await client.post("/v1/chat/title", json={"messages": CONVERSATION})
    assert response.status == 502
    assert (await response.json())["error"] == "no_title"
