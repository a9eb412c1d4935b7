"""Concurrency tokens: at most N jobs of a kind at once.

`LocalLimiter` serves a single replica. A Redis-backed limiter (leased tokens shared by all
replicas) implements the same interface; `make_limiter()` picks one from the settings.
Over the limit, `acquire()` raises `Busy` at once: callers never queue, and every service
answers the same 429 with `Retry-After` (errors.Busy). Services hold a token through `slot()`,
which gives it back even when the holder is being cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from aiohttp import web

from .errors import Busy
from .settings import RedisSettings


class ConcurrencyLimiter(Protocol):
    name: str
    limit: int

    async def acquire(self) -> str:
        """Take a token or raise Busy; returns the token's id."""

    async def release(self, token: str) -> None: ...

    def on_lost(self, token: str, callback: Callable[[str], None]) -> None:
        """Call `callback(token)` if the token is lost while held (a Redis lease that could
        not be renewed); the holder should then stop its job. Local tokens are never lost."""

    async def in_use(self) -> int: ...

    async def close(self) -> None: ...


class LocalLimiter:
    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._held: set[str] = set()

    async def acquire(self) -> str:
        if len(self._held) >= self.limit:
            raise Busy(f"All {self.limit} {self.name} slots are in use; try again in a moment.")
        token = uuid.uuid4().hex
        self._held.add(token)
        return token

    async def release(self, token: str) -> None:
        self._held.discard(token)

    def on_lost(self, token: str, callback: Callable[[str], None]) -> None:
        """A token held in this process cannot be lost while the process lives."""

    async def in_use(self) -> int:
        return len(self._held)

    async def close(self) -> None:
        self._held.clear()


class Gauge(Protocol):
    """What `slot` needs of a metric: a Prometheus Gauge, say."""

    def inc(self) -> None: ...

    def dec(self) -> None: ...


@asynccontextmanager
async def slot(
    limiter: ConcurrencyLimiter,
    *,
    in_use: Gauge | None = None,
    on_busy: Callable[[Busy], None] | None = None,
) -> AsyncIterator[str]:
    """Hold one token for the body of the `async with`, released whatever happens.

    Over the limit `Busy` is raised before the body runs; `on_busy` sees it first (to count
    it, or to raise an error of its own instead). `in_use` counts the tokens held."""
    try:
        token = await limiter.acquire()
    except Busy as exc:
        if on_busy is not None:
            on_busy(exc)
        raise
    if in_use is not None:
        in_use.inc()
    try:
        yield token
    finally:
        if in_use is not None:
            in_use.dec()
        await release_shielded(limiter, token)


async def release_shielded(limiter: ConcurrencyLimiter, token: str) -> None:
    """Give a token back even if the holder is cancelled (again) meanwhile: a cancelled
    release would leave the slot taken until its lease runs out, or for ever."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(limiter.release(token))


def make_limiter(
    name: str, limit: int, redis_url: str = "", lease_seconds: float = 30.0, *, redis_password: str = ""
) -> ConcurrencyLimiter:
    if redis_url:
        from .redis_limiter import RedisLimiter

        return RedisLimiter(name, limit, redis_url, lease_seconds=lease_seconds, password=redis_password)
    return LocalLimiter(name, limit)


def limiter_context(
    key: web.AppKey[ConcurrencyLimiter],
    name: str,
    limit: int,
    redis: RedisSettings,
    *,
    lease_seconds: float = 30.0,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that puts the `name` limiter under `key` (shared through Redis when
    REDIS_URL is set) and closes it on shutdown."""

    async def limiter_ctx(app: web.Application) -> AsyncIterator[None]:
        limiter = make_limiter(
            name,
            limit,
            redis.redis_url,
            lease_seconds,
            redis_password=redis.redis_password.get_secret_value(),
        )
        app[key] = limiter
        yield
        await limiter.close()

    return limiter_ctx
