"""The one concurrency slot every service holds: the same busy answer everywhere, and a
token that comes back however its holder ends."""

from __future__ import annotations

import asyncio

import pytest
from tinychat_common.errors import BUSY_RETRY_AFTER_SECONDS, Busy
from tinychat_common.limiter import LocalLimiter, slot

pytestmark = pytest.mark.timeout(20)


class CountingGauge:
    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class SlowReleaseLimiter(LocalLimiter):
    """A limiter whose release waits until the test lets it finish (a Redis round trip)."""

    def __init__(self) -> None:
        super().__init__("slow", 1)
        self.releasing = asyncio.Event()
        self.may_finish = asyncio.Event()

    async def release(self, token: str) -> None:
        self.releasing.set()
        await self.may_finish.wait()
        await super().release(token)


def test_busy_answers_429_with_retry_after() -> None:
    response = Busy("All 1 image slots are in use; try again in a moment.").to_response()
    assert response.status == 429
    assert response.headers["Retry-After"] == str(BUSY_RETRY_AFTER_SECONDS)


async def test_over_the_limit_busy_is_raised_before_the_body_and_seen_by_on_busy() -> None:
    limiter = LocalLimiter("image", 1)
    seen: list[Busy] = []
    async with slot(limiter):
        with pytest.raises(Busy) as refused:
            async with slot(limiter, on_busy=seen.append):
                pytest.fail("the body ran without a token")
    assert seen == [refused.value]
    assert "All 1 image slots are in use" in refused.value.message


async def test_on_busy_may_raise_an_error_of_its_own() -> None:
    limiter = LocalLimiter("rlm", 0)

    def refuse(busy: Busy) -> None:
        raise LookupError(busy.message)

    with pytest.raises(LookupError):
        async with slot(limiter, on_busy=refuse):
            pass


async def test_the_gauge_counts_held_tokens_and_the_token_comes_back_after_an_error() -> None:
    limiter = LocalLimiter("image", 2)
    gauge = CountingGauge()
    with pytest.raises(RuntimeError):
        async with slot(limiter, in_use=gauge):
            assert gauge.value == 1 and await limiter.in_use() == 1
            raise RuntimeError("the job failed")
    assert gauge.value == 0 and await limiter.in_use() == 0


async def test_a_holder_cancelled_during_release_still_gives_the_token_back() -> None:
    limiter = SlowReleaseLimiter()

    async def hold() -> None:
        async with slot(limiter):
            pass

    holder = asyncio.create_task(hold())
    await limiter.releasing.wait()
    holder.cancel()  # the client went away while the token was being given back
    await asyncio.sleep(0)
    limiter.may_finish.set()
    await asyncio.wait_for(_until_released(limiter), timeout=10)
    await asyncio.gather(holder, return_exceptions=True)


async def _until_released(limiter: LocalLimiter) -> None:
    while await limiter.in_use():
        await asyncio.sleep(0.01)
