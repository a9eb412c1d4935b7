"""Per-client limits: who the client is, and a sliding window of its recent requests.

In memory, per replica: with N gateway replicas a client gets at most N times the limit,
which is fine for stopping a runaway script or a passcode guesser.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable, Sequence

from aiohttp import web

from .config import Network

# Past this many tracked addresses the oldest idle ones are dropped early, so a flood of
# spoofed or rotating addresses cannot grow the table without bound.
MAX_TRACKED_CLIENTS = 100_000


class SlidingWindow:
    """At most `limit` events per `window` seconds for each key."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may act again; 0 when it may now."""
        events = self._events.get(key)
        if not events:
            return 0.0
        now = self._clock()
        self._forget_old(events, now)
        if len(events) < self.limit:
            return 0.0
        return events[0] + self.window - now

    def record(self, key: str) -> None:
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= MAX_TRACKED_CLIENTS:
                self.sweep()
            events = self._events[key] = deque()
        events.append(self._clock())

    def hit(self, key: str) -> float:
        """Count one event unless over the limit; returns the wait (0 = allowed)."""
        wait = self.retry_after(key)
        if wait <= 0:
            self.record(key)
        return wait

    def sweep(self) -> None:
        """Drop keys with no event inside the window (and, when still too many, the oldest)."""
        now = self._clock()
        for key in list(self._events):
            events = self._events[key]
            self._forget_old(events, now)
            if not events:
                del self._events[key]
        while len(self._events) >= MAX_TRACKED_CLIENTS:
            del self._events[next(iter(self._events))]

    def __len__(self) -> int:
        return len(self._events)

    def _forget_old(self, events: deque[float], now: float) -> None:
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()


def client_address(request: web.Request, trusted_proxies: Sequence[Network]) -> str:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy, the
    right-most X-Forwarded-For entry that is not itself a trusted proxy."""
    peer = request.remote or "unknown"
    if not trusted_proxies or not _is_trusted(peer, trusted_proxies):
        return peer
    forwarded = request.headers.getall("X-Forwarded-For", [])
    hops = [hop.strip() for header in forwarded for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def is_trusted_peer(request: web.Request, trusted_proxies: Sequence[Network]) -> bool:
    """Is the TCP peer one of TRUSTED_PROXIES (whose forwarded headers are believed)?"""
    return bool(trusted_proxies) and _is_trusted(request.remote or "", trusted_proxies)


def limit_key(address: str) -> str:
    """What a per-client limit counts by: an IPv4 address as it is, an IPv6 address by its
    /64 (one host or home network usually holds a whole /64, so counting single addresses
    would give it 2^64 budgets)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted_proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)
