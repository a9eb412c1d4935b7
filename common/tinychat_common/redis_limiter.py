"""Concurrency tokens shared by every replica, kept in Redis as expiring leases.

One sorted set per kind of job, `tinychat:tokens:<name>`: each member is a token id and
its score the moment its lease expires (Redis server time, so replicas with skewed clocks
agree). Acquiring is one Lua script — drop expired leases, count, add — so two replicas
can never both take the last token. While a job runs, a renewal task pushes its lease
forward every third of the lease; a replica that dies stops renewing, and its tokens
come back by themselves within one lease. The set itself carries a TTL, so Redis holds
nothing but live tokens.

Failures are readable: Redis unreachable at acquire → `ServiceUnavailable`; a lease that
can no longer be renewed (Redis gone mid-job, or the token expired) calls the holder's
`on_lost` callbacks, so the job can be stopped instead of running unaccounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as redis
from redis.exceptions import RedisError

from .errors import Busy, ServiceUnavailable

log = logging.getLogger(__name__)

KEY_PREFIX = "tinychat:tokens:"

# Redis server time in ms: every replica measures leases by the same clock.
_NOW_MS = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
"""

# KEYS[1] the token set; ARGV: token, limit, lease in ms. Returns 1 when taken, 0 when full.
_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
return 1
"""
)

# Extends a lease that is still alive; 0 when the token is gone (expired and dropped).
_RENEW = (
    _NOW_MS
    + """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires or tonumber(expires) <= now_ms then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return 1
"""
)

_IN_USE = (
    _NOW_MS
    + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms, '+inf')
"""
)

LostCallback = Callable[[str], None]


@dataclass
class _Lease:
    renewal: asyncio.Task[None] | None = None
    on_lost: list[LostCallback] = field(default_factory=list)
    lost: bool = False


class RedisLimiter:
    """At most `limit` tokens of `name` at once across every replica sharing `redis_url`."""

    def __init__(
        self, name: str, limit: int, redis_url: str, *, lease_seconds: float = 30.0, password: str = ""
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.name = name
        self.limit = limit
        self.key = KEY_PREFIX + name
        self.lease_seconds = lease_seconds
        # Short socket timeouts: a Redis that stopped answering must fail a call, not hang it.
        timeout = min(5.0, max(0.5, lease_seconds / 3))
        # REDIS_PASSWORD (or one in the URL): Redis in compose and Kubernetes requires one.
        self._redis = redis.Redis.from_url(
            redis_url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry_on_timeout=False,
            password=password or None,
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._count = self._redis.register_script(_IN_USE)
        self._leases: dict[str, _Lease] = {}

    @property
    def lease_ms(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    async def acquire(self) -> str:
        token = uuid.uuid4().hex
        try:
            taken = await self._acquire(keys=[self.key], args=[token, self.limit, self.lease_ms])
        except (RedisError, OSError) as exc:
            log.warning("redis unreachable while acquiring a %s token: %s", self.name, exc)
            raise ServiceUnavailable(
                f"The {self.name} concurrency store (Redis) is unreachable; try again later."
            ) from None
        if not taken:
            raise Busy(f"All {self.limit} {self.name} slots are in use; try again in a moment.")
        lease = _Lease()
        self._leases[token] = lease
        lease.renewal = asyncio.create_task(self._keep_renewing(token), name=f"lease-{self.name}")
        return token

    def on_lost(self, token: str, callback: LostCallback) -> None:
        """Call `callback(token)` if this token's lease is lost while it is held."""
        lease = self._leases.get(token)
        if lease is None:
            return
        if lease.lost:
            callback(token)
        else:
            lease.on_lost.append(callback)

    async def release(self, token: str) -> None:
        lease = self._leases.pop(token, None)
        if lease is not None and lease.renewal is not None:
            lease.renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease.renewal
        try:
            await self._redis.zrem(self.key, token)
        except (RedisError, OSError) as exc:
            # Nothing to undo: the lease runs out by itself.
            log.warning("could not release %s token (its lease will expire): %s", self.name, exc)

    async def in_use(self) -> int:
        try:
            return int(await self._count(keys=[self.key]))
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"The {self.name} concurrency store (Redis) is unreachable.") from exc

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        for token in list(self._leases):
            await self.release(token)
        await self._redis.aclose()

    async def _keep_renewing(self, token: str) -> None:
        loop = asyncio.get_running_loop()
        interval = self.lease_seconds / 3
        # The lease is only known to be ours until one lease after the last good renewal.
        held_until = loop.time() + self.lease_seconds
        while True:
            await asyncio.sleep(min(interval, max(0.0, held_until - loop.time())))
            try:
                renewed = await self._renew(keys=[self.key], args=[token, self.lease_ms])
            except (RedisError, OSError) as exc:
                if loop.time() + interval / 3 < held_until:
                    log.warning("renewing a %s token failed, retrying: %s", self.name, exc)
                    interval = max(0.05, interval / 2)
                    continue
                log.error("lost a %s token: Redis unreachable for a whole lease (%s)", self.name, exc)
                break
            if not renewed:
                log.error("lost a %s token: its lease expired before it was renewed", self.name)
                break
            held_until = loop.time() + self.lease_seconds
            interval = self.lease_seconds / 3
        self._lose(token)

    def _lose(self, token: str) -> None:
        lease = self._leases.get(token)
        if lease is None or lease.lost:
            return
        lease.lost = True
        for callback in lease.on_lost:
            try:
                callback(token)
            except Exception:
                log.exception("a lease-lost callback failed")
