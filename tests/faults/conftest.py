"""Fault fixtures: the restartable redis-server of the Redis tests."""

from tests.redis.conftest import redis_server  # noqa: F401 (a fixture)
