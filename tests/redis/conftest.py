"""Redis fixtures: `redis_server` is a redis-server process (restartable); `any_redis` is
that, and again Redis in a container via testcontainers (skipped, with the reason, where
Docker or the local image is missing)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.redis.server import Redis, RedisInContainer, RedisServer, container_redis_unavailable


@contextlib.asynccontextmanager
async def local_redis_server() -> AsyncIterator[RedisServer]:
    """A redis-server process; the test is skipped where none is installed."""
    if not RedisServer.available():
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    async with RedisServer() as server:
        yield server


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    async with local_redis_server() as server:
        yield server


@pytest.fixture(params=["redis-server", pytest.param("testcontainers", marks=pytest.mark.docker)])
async def any_redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    if request.param == "testcontainers":
        reason = container_redis_unavailable()
        if reason:
            pytest.skip(reason)
        async with RedisInContainer() as container:
            yield container
        return
    async with local_redis_server() as server:
        yield server
