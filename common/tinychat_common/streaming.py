"""SSE responses: EventStream (headers, keepalive, tracking) and serve_events().

A handler validates its input first (errors then are JSON 4xx), and only then starts a
stream; from that point every failure is an `error` event followed by `done`. A client
that goes away is a normal end: the work behind it is cancelled, nothing is logged as an
error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from . import sse
from .errors import TinyChatError
from .events import Done, Event
from .metrics import CLIENT_CLOSED, METRICS

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
DEFAULT_KEEPALIVE_SECONDS = 15.0

OPEN_STREAMS = web.AppKey("tinychat_open_streams", weakref.WeakSet)
KEEPALIVE_SECONDS = web.AppKey("tinychat_keepalive_seconds", float)

ClientGone = (ConnectionResetError, ConnectionError)


def mark_client_closed(request: web.Request) -> None:
    """The client left before its answer ended: the metrics count it as 499, not 500."""
    request[CLIENT_CLOSED] = True


class EventStream:
    """One `text/event-stream` response. Frames are written whole, so a keepalive and the
    producer never interleave inside an event.

    The keepalive is one timer per stream, not a task: it wakes only when the stream may
    have been quiet for the interval, so a stream that talks costs nothing extra."""

    def __init__(self, request: web.Request, keepalive_seconds: float | None = None) -> None:
        self.request = request
        self.response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        self.done_sent = False
        self.events_sent = 0
        self._keepalive_seconds = keepalive_seconds or request.app.get(
            KEEPALIVE_SECONDS, DEFAULT_KEEPALIVE_SECONDS
        )
        self._loop = asyncio.get_running_loop()
        self._last_write = self._loop.time()
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._keepalive_write: asyncio.Task[None] | None = None
        self._closed = False
        self._counted = False

    async def start(self) -> None:
        await self.response.prepare(self.request)
        self._last_write = self._loop.time()
        self._arm_keepalive(self._last_write + self._keepalive_seconds)
        open_streams = self.request.app.get(OPEN_STREAMS)
        if open_streams is None:
            open_streams = self.request.app.setdefault(OPEN_STREAMS, weakref.WeakSet())
        open_streams.add(self)
        metrics = self.request.app.get(METRICS)
        if metrics is not None:
            metrics.active_streams.inc()
            self._counted = True

    async def write(self, data: bytes) -> None:
        self._last_write = self._loop.time()
        await self.response.write(data)

    async def send(self, *events: Event) -> None:
        """Write the events in one write: deltas that arrive together leave together."""
        if self.done_sent:
            return
        await self.write(sse.encode(events[0]) if len(events) == 1 else sse.encode_many(events))
        self.events_sent += len(events)
        if type(events[-1]) is Done:
            self.done_sent = True

    async def fail(self, error: TinyChatError) -> None:
        """End the stream with the error's event and `done`, if it has not ended yet."""
        if self.done_sent or self._closed:
            return
        with contextlib.suppress(*ClientGone):
            await self.send(error.to_event(), Done("error"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_keepalives()
        open_streams = self.request.app.get(OPEN_STREAMS)
        if open_streams is not None:
            open_streams.discard(self)
        if self._counted:
            self.request.app[METRICS].active_streams.dec()
        with contextlib.suppress(*ClientGone):
            await self.response.write_eof()

    def _arm_keepalive(self, when: float) -> None:
        self._keepalive_timer = self._loop.call_at(when, self._keepalive_due)

    def _keepalive_due(self) -> None:
        self._keepalive_timer = None
        if self._closed:
            return
        due = self._last_write + self._keepalive_seconds
        if self._loop.time() < due:
            self._arm_keepalive(due)  # something was written meanwhile: wait from there
            return
        # Writing may wait for a slow client, so it runs as a task; the timer is re-armed
        # once the comment is out.
        self._keepalive_write = self._loop.create_task(self._write_keepalive())

    async def _write_keepalive(self) -> None:
        try:
            await self.write(sse.KEEPALIVE)
        except ClientGone:
            return
        finally:
            self._keepalive_write = None
        if not self._closed:
            self._arm_keepalive(self._last_write + self._keepalive_seconds)

    def _stop_keepalives(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        if self._keepalive_write is not None:
            self._keepalive_write.cancel()
            self._keepalive_write = None


EventBatch = Event | Sequence[Event]


async def serve_events(
    request: web.Request, events: AsyncIterator[EventBatch], *, keepalive_seconds: float | None = None
) -> web.StreamResponse:
    """Stream the events (or batches of events) an async iterator yields, always ending
    with exactly one `done`."""
    stream = EventStream(request, keepalive_seconds)
    await stream.start()
    try:
        async for item in events:
            # A tuple or list is a batch; anything else is one event (no ABC check per event).
            if type(item) is tuple or type(item) is list:
                if item:
                    await stream.send(*item)
            elif isinstance(item, Sequence):
                batch = tuple(item)
                if batch:
                    await stream.send(*batch)
            else:
                await stream.send(item)
            if stream.done_sent:
                break
        else:
            await stream.send(Done("stop"))
    except TinyChatError as exc:
        await stream.fail(exc)
    except ClientGone:
        mark_client_closed(request)
        log.debug("client went away from %s", request.path)
    except Exception:
        log.exception("stream %s failed", request.path)
        await stream.fail(TinyChatError())
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        await stream.close()
    return stream.response
