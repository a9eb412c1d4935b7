"""RedisLimiter against a real redis-server: leased tokens shared by every replica."""

from __future__ import annotations

import asyncio
import sys
import textwrap

import pytest
import redis.asyncio as redis
from tinychat_common.errors import Busy, ServiceUnavailable
from tinychat_common.limiter import make_limiter, slot
from tinychat_common.redis_limiter import RedisLimiter

from tests.redis.server import Redis, RedisServer
from tests.support.net import free_port

pytestmark = [pytest.mark.redis, pytest.mark.timeout(30)]


async def test_limit_plus_one_concurrent_acquires_across_replicas_gives_exactly_one_busy(
    any_redis: Redis,
) -> None:
    limit = 3
    # One limiter per "replica": they share nothing but Redis.
    replicas = [RedisLimiter("rlm", limit, any_redis.url, lease_seconds=5) for _ in range(limit + 1)]
    try:
        results = await asyncio.gather(*(r.acquire() for r in replicas), return_exceptions=True)
        busy = [r for r in results if isinstance(r, Busy)]
        tokens = [r for r in results if isinstance(r, str)]
        assert len(busy) == 1 and len(tokens) == limit
        assert "All 3 rlm slots are in use" in busy[0].message
        assert await replicas[0].in_use() == limit
    finally:
        for replica in replicas:
            await replica.close()


async def test_released_token_can_be_taken_again(redis_server: RedisServer) -> None:
    limiter = RedisLimiter("rlm", 1, redis_server.url, lease_seconds=5)
    try:
        async with slot(limiter):
            with pytest.raises(Busy):
                await limiter.acquire()
        token = await limiter.acquire()
        assert await limiter.in_use() == 1
        await limiter.release(token)
        assert await limiter.in_use() == 0
    finally:
        await limiter.close()


async def test_a_running_job_keeps_its_token_past_the_lease_by_renewing(redis_server: RedisServer) -> None:
    # Leases long enough that a renewal stalled by a busy machine still comes in time.
    holder = RedisLimiter("rlm", 1, redis_server.url, lease_seconds=3)
    other = RedisLimiter("rlm", 1, redis_server.url, lease_seconds=3)
    try:
        await holder.acquire()
        await asyncio.sleep(7)  # more than two leases
        with pytest.raises(Busy):
            await other.acquire()
    finally:
        await holder.close()
        await other.close()


HOLDER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from tinychat_common.redis_limiter import RedisLimiter

    async def main():
        limiter = RedisLimiter("rlm", 1, sys.argv[1], lease_seconds=float(sys.argv[2]))
        await limiter.acquire()
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_token_of_a_holder_killed_without_releasing_comes_back_within_the_lease(
    any_redis: Redis,
) -> None:
    lease = 5.0  # the holder must still hold it when killed, however busy the machine
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER_SCRIPT, any_redis.url, str(lease), stdout=asyncio.subprocess.PIPE
    )
    survivor = RedisLimiter("rlm", 1, any_redis.url, lease_seconds=lease)
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 15)
        assert line.strip() == b"held"
        holder.kill()  # SIGKILL: no release, no clean-up
        await asyncio.wait_for(holder.wait(), 5)
        with pytest.raises(Busy):
            await survivor.acquire()
        token = await _acquire_within(survivor, seconds=lease * 3)
        assert token
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await survivor.close()


async def _acquire_within(limiter: RedisLimiter, seconds: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            return await limiter.acquire()
        except Busy:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_unreachable_redis_is_a_readable_service_unavailable() -> None:
    limiter = RedisLimiter("rlm", 2, f"redis://127.0.0.1:{free_port()}/0", lease_seconds=3)
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            await limiter.acquire()
        assert "Redis" in caught.value.message and "unreachable" in caught.value.message
        assert caught.value.status == 503
    finally:
        await limiter.close()


async def test_redis_stopped_while_a_token_is_held_reports_the_token_lost(any_redis: Redis) -> None:
    limiter = RedisLimiter("rlm", 1, any_redis.url, lease_seconds=0.9)
    lost = asyncio.Event()
    try:
        token = await limiter.acquire()
        limiter.on_lost(token, lambda _token: lost.set())
        await any_redis.stop()
        await asyncio.wait_for(lost.wait(), 10)
        await limiter.release(token)  # Redis is gone: release must still return
    finally:
        await limiter.close()


async def test_new_tokens_work_again_after_redis_comes_back(redis_server: RedisServer) -> None:
    limiter = RedisLimiter("rlm", 1, redis_server.url, lease_seconds=3)
    try:
        await limiter.release(await limiter.acquire())
        await redis_server.stop()
        with pytest.raises(ServiceUnavailable):
            await limiter.acquire()
        await redis_server.start()
        token = await limiter.acquire()
        assert await limiter.in_use() == 1
        await limiter.release(token)
    finally:
        await limiter.close()


async def test_redis_holds_only_prefixed_token_sets_with_a_ttl(redis_server: RedisServer) -> None:
    limiter = make_limiter("rlm", 2, redis_server.url, lease_seconds=5)
    client = redis.Redis.from_url(redis_server.url)
    try:
        token = await limiter.acquire()
        keys = await client.keys("*")
        assert keys == [b"tinychat:tokens:rlm"]
        assert 0 < await client.pttl("tinychat:tokens:rlm") <= 10_000
        assert await client.zrange("tinychat:tokens:rlm", 0, -1) == [token.encode()]
        await limiter.release(token)
        assert await client.keys("*") == []
    finally:
        await limiter.close()
        await client.aclose()


async def test_a_redis_with_a_password_refuses_a_limiter_without_it() -> None:
    async with RedisServer(password="redis-test-password-123") as server:
        anonymous = make_limiter("rlm", 1, server.url)
        wrong = make_limiter("rlm", 1, server.url, redis_password="not-it")
        right = make_limiter("rlm", 1, server.url, redis_password="redis-test-password-123")
        try:
            for limiter in (anonymous, wrong):
                with pytest.raises(ServiceUnavailable):
                    await limiter.acquire()
            token = await right.acquire()
            assert await right.in_use() == 1
            await right.release(token)
        finally:
            for limiter in (anonymous, wrong, right):
                await limiter.close()
