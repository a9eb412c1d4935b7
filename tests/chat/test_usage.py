"""Every answer ends with token counts: the API's own, or an estimate marked as one."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.messages import user
from tests.support.sse import read_events

pytestmark = pytest.mark.timeout(15)


async def test_the_apis_usage_is_passed_on_unchanged(chat_client, fake_openai: FakeOpenAI):
    usage = {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}
    fake_openai.enqueue(Reply(text="ok", usage=usage))
    events = await read_events(await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]}))
    assert events[-1]["usage"] == usage
    assert fake_openai.history[-1]["stream_options"] == {"include_usage": True}


async def test_without_usage_from_the_api_the_counts_are_estimated_and_marked(
    chat_client, fake_openai: FakeOpenAI
):
    fake_openai.enqueue(Reply(text="a" * 40, reasoning=["b" * 40], usage=None))
    body = {"messages": [user("c" * 80)]}
    events = await read_events(await chat_client.post("/v1/chat/stream", json=body))
    assert events[-1]["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 20,  # reasoning tokens are output tokens too
        "total_tokens": 40,
        "estimated": True,
    }
