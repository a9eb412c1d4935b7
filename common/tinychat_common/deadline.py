"""A read deadline for a long stream: how a service notices that the other side went quiet.

aiohttp's own `sock_read` timeout cancels and re-creates a timer on every read, which is
most of a relay's per-chunk cost at hundreds of streams. Here one timer per stream is
re-armed only when it fires, so a read costs a clock read and a few attribute writes.
Only time spent waiting for the other side counts, not time our own client takes to
accept what we forward.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ReadDeadline:
    """Calls `expire()` (which should close the response being read, to wake the reader)
    when nothing arrives for `first_byte` seconds at the start or `idle` seconds later on.

    The reader calls `start_waiting()` before each read and `got_data()` after it, and
    checks `expired` when a read fails or ends."""

    def __init__(self, expire: Callable[[], object], first_byte: float, idle: float) -> None:
        self._expire = expire
        self._loop = asyncio.get_running_loop()
        self.first_byte = first_byte
        self.idle = idle
        self._limit = first_byte
        self._since = self._loop.time()
        self.waiting = True
        self.expired = False
        self.got_first_byte = False
        self._handle = self._loop.call_at(self._since + first_byte, self._check)

    def start_waiting(self) -> None:
        if self.got_first_byte:
            self._since = self._loop.time()
        self.waiting = True

    def got_data(self) -> None:
        self.waiting = False
        if not self.got_first_byte:
            self.got_first_byte = True
            self._limit = self.idle
            # The timer was set for the first byte; the idle limit may be shorter.
            self._handle.cancel()
            self._handle = self._loop.call_at(self._loop.time() + self.idle, self._check)

    def cancel(self) -> None:
        self._handle.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        if self.waiting and now - self._since >= self._limit:
            self.expired = True
            self._expire()
            return
        # Not waiting now (our client is slow): count afresh from here.
        due = self._since + self._limit if self.waiting else now + self._limit
        self._handle = self._loop.call_at(max(due, now), self._check)
