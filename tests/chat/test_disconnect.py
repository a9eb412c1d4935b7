"""A client that goes away cancels the work behind it, all the way to the model API."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.messages import user

pytestmark = pytest.mark.timeout(15)


async def test_client_disconnect_closes_the_upstream_request(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(text=" ".join(["word"] * 500), chunk_delay=0.02))
    response = await chat_client.post("/v1/chat/stream", json={"messages": [user("hi")]})
    assert response.status == 200
    first = await response.content.readuntil(b"\n\n")
    assert first.startswith(b'data: {"content"')
    response.close()  # hang up mid-answer
    await asyncio.wait_for(fake_openai.disconnected.wait(), timeout=5)
    assert fake_openai.disconnects == 1


async def test_a_cancelled_request_is_logged_as_cancelled(client_with, fake_openai: FakeOpenAI, tmp_path):
    log_path = tmp_path / "chat.jsonl"
    client = await client_with(chat_log=str(log_path))
    fake_openai.enqueue(Reply(text=" ".join(["word"] * 500), chunk_delay=0.02))
    response = await client.post("/v1/chat/stream", json={"messages": [user("hi")]})
    await response.content.readuntil(b"\n\n")
    response.close()
    await asyncio.wait_for(fake_openai.disconnected.wait(), timeout=5)
    for _ in range(100):  # the server notices the hang-up on its own schedule
        if log_path.read_text():
            break
        await asyncio.sleep(0.02)
    assert '"finish_reason": "cancelled"' in log_path.read_text()
