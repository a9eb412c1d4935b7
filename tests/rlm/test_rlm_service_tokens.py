"""MAX_CONCURRENT_RLM across replicas: rlm-service with REDIS_URL against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from tests.redis.server import Redis, RedisServer
from tests.rlm.conftest import MakeStack
from tests.rlm.harness import RlmStack, repl, sandbox_gone
from tests.support.net import free_port
from tests.support.polling import wait_until
from tests.support.sse import EventReader, assert_ends_with_one_done, is_code_step, read_events

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

SLEEP = repl("import time\ntime.sleep(1.5)")
DONE = repl("FINAL('finished')")


def question(text: str = "Go.") -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def outcome(stack: RlmStack) -> int | str:
    """429 for a busy refusal, else the stream's final answer."""
    async with stack.client.post("/v1/rlm/stream", json=question()) as response:
        if response.status != 200:
            assert (await response.json())["error"] == "busy"
            return response.status
        events = await read_events(response)
        assert_ends_with_one_done(events)
        return "".join(e["content"] for e in events if "content" in e)


async def tokens_in_redis(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return await client.zcard("tinychat:tokens:rlm")
    finally:
        await client.aclose()


async def test_limit_plus_one_concurrent_jobs_gives_exactly_one_busy(
    make_stack: MakeStack, any_redis: Redis
) -> None:
    stack, _llm = await make_stack([SLEEP, SLEEP, DONE, DONE], redis_url=any_redis.url, max_concurrent_rlm=2)
    results = await asyncio.gather(*(outcome(stack) for _ in range(3)))
    assert sorted(results, key=str) == [429, "finished", "finished"]
    assert await tokens_in_redis(any_redis.url) == 0


async def test_two_replicas_share_one_limit(make_stack: MakeStack, any_redis: Redis) -> None:
    first, llm = await make_stack([SLEEP, DONE, DONE], redis_url=any_redis.url, max_concurrent_rlm=1)
    second, _ = await make_stack([], llm=llm, redis_url=any_redis.url, max_concurrent_rlm=1)

    running = asyncio.create_task(outcome(first))
    await wait_until(lambda: first.holds_tokens(1))
    assert await outcome(second) == 429
    assert await running == "finished"
    # Once the first replica's job is over, the second may run one.
    assert await outcome(second) == "finished"


async def test_redis_stopped_mid_job_ends_it_with_a_readable_error(
    make_stack: MakeStack, any_redis: Redis
) -> None:
    stack, _llm = await make_stack(
        [repl("import time\ntime.sleep(30)")],
        redis_url=any_redis.url,
        # Renewed every third of a lease: a loaded machine may stall a renewal a second or two.
        rlm_token_lease_seconds=5.0,
        rlm_cell_timeout=60,
    )
    async with stack.client.post("/v1/rlm/stream", json=question()) as response:
        reader = EventReader(response, seconds=20)
        await reader.until(is_code_step)
        await any_redis.stop()
        events = await reader.to_the_end()
    error = next(e for e in events if "error" in e)
    assert error["code"] == "token_lost"
    assert "Redis" in error["error"]
    assert assert_ends_with_one_done(events)["finish_reason"] == "error"
    await wait_until(lambda: sandbox_gone(stack.sandboxes.created[0]))
    assert stack.metric("tinychat_rlm_jobs_total", outcome="token_lost") == 1


async def test_unreachable_redis_refuses_a_job_readably_before_it_starts(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([DONE], redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with stack.client.post("/v1/rlm/stream", json=question()) as response:
        assert response.status == 503
        body = await response.json()
    assert body["error"] == "service_unavailable"
    assert "Redis" in body["detail"] and "unreachable" in body["detail"]
    assert stack.sandboxes.created == []
    ready = await (await stack.client.get("/readyz")).json()
    assert ready["tokens"] == "redis unreachable"


async def test_disconnect_gives_the_redis_token_back(
    make_stack: MakeStack, redis_server: RedisServer
) -> None:
    stack, _llm = await make_stack(
        [repl("import time\ntime.sleep(30)")], redis_url=redis_server.url, rlm_cell_timeout=60
    )
    response = await stack.client.post("/v1/rlm/stream", json=question())
    await EventReader(response, seconds=15).until(is_code_step)
    assert await tokens_in_redis(redis_server.url) == 1
    response.close()
    await wait_until(lambda: sandbox_gone(stack.sandboxes.created[0]))
    await wait_until(lambda: _redis_empty(redis_server.url))


async def _redis_empty(url: str) -> bool:
    return await tokens_in_redis(url) == 0
