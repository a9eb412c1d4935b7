"""The reference hops of the chat benchmark pass an answer through unchanged: a floor that
dropped or altered bytes would make every comparison against it meaningless."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bench.fake_upstream import DELTA
from bench.stack import MODEL, Stack

pytestmark = pytest.mark.timeout(60)

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
CHUNKS = 5


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with Stack(chunks=CHUNKS, interval=0.001, with_gateway=False, with_reference_hops=True) as stack:
        yield stack


async def answer(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.post(url, json=BODY) as response:
        assert response.status == 200
        return await response.read()


async def test_two_chained_reference_hops_relay_the_whole_answer_unchanged(stack: Stack) -> None:
    direct = await answer(stack.upstream_url)
    assert direct.count(DELTA.encode()) == CHUNKS
    for kind in ("tcp", "aiohttp"):
        assert await answer(stack.reference_url(kind)) == direct, kind
