"""Concurrency tokens: at most N jobs of a kind at once.

`LocalLimiter` serves a single replica. A Redis-backed limiter (leased tokens shared by all
replicas) implements the same interface; `make_limiter()` picks one from the settings.
Over the limit, `acquire()` raises `Busy` at once: callers never queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from .errors import Busy


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


@asynccontextmanager
async def slot(limiter: ConcurrencyLimiter) -> AsyncIterator[str]:
    """Hold one token for the body of the `async with`, released whatever happens."""
    token = await limiter.acquire()
    try:
        yield token
    finally:
        await limiter.release(token)


def make_limiter(
    name: str, limit: int, redis_url: str = "", lease_seconds: float = 30.0, *, redis_password: str = ""
) -> ConcurrencyLimiter:
    if redis_url:
        from .redis_limiter import RedisLimiter

        return RedisLimiter(name, limit, redis_url, lease_seconds=lease_seconds, password=redis_password)
    return LocalLimiter(name, limit)
