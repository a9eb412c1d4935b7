"""The reasoning benchmark's think answers are what it says: a leading `<think>` block cut
across deltas, which chat-service splits into reasoning events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from tinychat_chat.openai_stream import OpenAIStreamParser

from bench.fake_upstream import DELTA, THINK_MODEL, FakeUpstream, Script

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    fake = FakeUpstream(Script(chunks=6, interval=0.001))
    port = await fake.start()
    yield f"http://127.0.0.1:{port}"
    await fake.close()


async def test_the_think_model_streams_half_its_deltas_as_a_think_block(upstream: str) -> None:
    body = {"model": THINK_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    parser = OpenAIStreamParser()
    answer, reasoning = [], []
    async with (
        aiohttp.ClientSession() as session,
        session.post(upstream + "/v1/chat/completions", json=body) as r,
    ):
        async for chunk in r.content.iter_any():
            answer.append(parser.feed(chunk))
            reasoning.append(parser.take_reasoning())
    answer.append(parser.close())
    reasoning.append(parser.take_reasoning())
    assert "".join(reasoning) == DELTA * 3
    assert "".join(answer) == DELTA.lstrip() + DELTA * 2
    assert parser.done
