"""Talking to the services behind the gateway: the streaming relay (the hot path), and the
small JSON look-ups behind /api/config and /api/health.

The relay forwards the service's SSE bytes as they come, without decoding them. It only
makes sure the client never sees half an event and always sees exactly one `done`: bytes
are written up to the last complete frame (`\n\n`), and when the stream ends the last frame
is checked for `done`; if it is missing (the service died mid-answer) an error event and
`done` are appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from tinychat_common.deadline import ReadDeadline
from tinychat_common.errors import TinyChatError
from tinychat_common.streaming import ClientGone, EventStream, mark_client_closed

from .errors import BadDownstreamAnswer, ServiceInterrupted, ServiceStalled, ServiceUnreachable
from .metrics import GatewayMetrics

log = logging.getLogger(__name__)

FRAME_END = b"\n\n"
# A service's error answer (before any stream) is small JSON; more than this is not one.
MAX_ERROR_BODY = 1024 * 1024
# One SSE frame (a generated image is the largest) never comes near this.
MAX_FRAME_BYTES = 64 * 1024 * 1024
PASSED_ERROR_HEADERS = ("Retry-After",)
JSON_HEADERS = {"Content-Type": "application/json"}


class RelayStream(EventStream):
    """An EventStream whose bytes come from a service. When something else ends it (the
    shutdown drain), `cut` tells the relay loop to stop forwarding, and the service's
    response is closed so a loop waiting for its next bytes wakes up at once."""

    def __init__(self, request: web.Request, downstream: aiohttp.ClientResponse) -> None:
        super().__init__(request)
        self.downstream = downstream
        self.cut = False

    async def fail(self, error: TinyChatError) -> None:
        self.cut = True
        await super().fail(error)
        self.downstream.close()


async def relay(
    request: web.Request,
    session: aiohttp.ClientSession,
    metrics: GatewayMetrics,
    service: str,
    url: str,
    body: bytes,
    extra_headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """POST `body` to a service's stream endpoint and relay what it answers.

    The session's `sock_read` is the idle limit. It is watched here rather than by aiohttp
    (which re-arms a timer on every read): around the answer's head with asyncio.timeout,
    then on the body with one ReadDeadline per stream."""
    idle = session.timeout.sock_read
    try:
        async with asyncio.timeout(idle):
            headers = {**JSON_HEADERS, **extra_headers} if extra_headers else JSON_HEADERS
            response = await session.post(
                url, data=body, headers=headers, timeout=_without_read_timeout(session.timeout)
            )
    except aiohttp.ConnectionTimeoutError:
        metrics.downstream_errors.labels(service, "unreachable").inc()
        return await answer_with_error_event(request, ServiceUnreachable(service))
    except (aiohttp.ServerTimeoutError, TimeoutError):
        metrics.downstream_errors.labels(service, "timeout").inc()
        return await answer_with_error_event(request, ServiceStalled(service))
    except aiohttp.ClientError as exc:
        metrics.downstream_errors.labels(service, "unreachable").inc()
        log.warning("%s service unreachable at %s: %s", service, url, exc)
        return await answer_with_error_event(request, ServiceUnreachable(service))
    try:
        if response.status != 200:
            return await pass_error_answer(response, metrics, service)
        if response.content_type != "text/event-stream":
            metrics.downstream_errors.labels(service, "bad_answer").inc()
            raise BadDownstreamAnswer(service, response.status)
        return await relay_events(request, response, metrics, service, idle)
    finally:
        # Closing (not releasing) a response whose body was not read to the end drops the
        # connection, so the service sees the client leave at once.
        if response.content.is_eof():
            response.release()
        else:
            response.close()


def _without_read_timeout(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=timeout.total,
        connect=timeout.connect,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


async def relay_events(
    request: web.Request,
    response: aiohttp.ClientResponse,
    metrics: GatewayMetrics,
    service: str,
    idle_timeout: float | None = None,
) -> web.StreamResponse:
    stream = RelayStream(request, response)
    await stream.start()
    deadline = ReadDeadline(response.close, idle_timeout, idle_timeout) if idle_timeout else None
    last_frames = b""
    pending = bytearray()
    frames = 0
    relayed = 0
    failure: TinyChatError | None = None
    client_gone = False
    try:
        content = response.content
        while True:
            if deadline is not None:
                deadline.start_waiting()
            # readany() directly, not iter_any(): one call less per read on the hot path.
            chunk = await content.readany()
            if not chunk or stream.cut:
                break
            if deadline is not None:
                deadline.got_data()
            if pending or not chunk.endswith(FRAME_END):
                # Rare: a frame split across reads. Hold the unfinished tail back.
                pending += chunk
                chunk = _take_complete_frames(pending)
                if not chunk:
                    if len(pending) > MAX_FRAME_BYTES:
                        failure = BadDownstreamAnswer(service, response.status)
                        break
                    continue
            await stream.write(chunk)
            last_frames = chunk
            relayed += len(chunk)
            frames += chunk.count(FRAME_END)
    except (aiohttp.ServerTimeoutError, TimeoutError):
        failure = ServiceStalled(service)
    except aiohttp.ClientError as exc:
        # Payload or connection errors: the service went away mid-stream.
        log.info("%s service stream broke: %r", service, exc)
    except (*ClientGone, asyncio.CancelledError) as exc:
        # The client went away (a failed write, or handler cancellation): a normal end.
        # ClientGone is a tuple of classes, hence the unpacking: a tuple inside the tuple
        # is not a class, and Python would raise TypeError from this very line.
        client_gone = True
        mark_client_closed(request)
        log.debug("client went away from %s", request.path)
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        if deadline is not None:
            deadline.cancel()
            if deadline.expired and not stream.cut:
                failure = ServiceStalled(service)
        metrics.frames_relayed.labels(service).inc(frames)
        metrics.bytes_relayed.labels(service).inc(relayed)
        if client_gone or stream.cut or ends_with_done(last_frames):
            stream.done_sent = True
        await _finish(stream, failure, service, metrics)
    return stream.response


async def _finish(
    stream: RelayStream, failure: TinyChatError | None, service: str, metrics: GatewayMetrics
) -> None:
    try:
        if not stream.done_sent:
            failure = failure or ServiceInterrupted(service)
            kind = "timeout" if isinstance(failure, ServiceStalled) else "interrupted"
            metrics.downstream_errors.labels(service, kind).inc()
            await stream.fail(failure)
    finally:
        await stream.close()


def _take_complete_frames(pending: bytearray) -> bytes:
    """Remove and return the complete frames at the start of `pending` (maybe none)."""
    end = pending.rfind(FRAME_END)
    if end < 0:
        return b""
    end += len(FRAME_END)
    complete = bytes(pending[:end])
    del pending[:end]
    return complete


def ends_with_done(frames: bytes) -> bool:
    """Is the last frame of `frames` (complete frames only) the final `done` event?"""
    if not frames.endswith(FRAME_END):
        return False
    start = frames.rfind(FRAME_END, 0, len(frames) - len(FRAME_END))
    last = frames[start + len(FRAME_END) if start >= 0 else 0 :]
    if not last.startswith(b"data:") or b'"done"' not in last:
        return False
    try:
        payload = json.loads(last[5:])
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("done") is True


async def pass_error_answer(
    response: aiohttp.ClientResponse, metrics: GatewayMetrics, service: str
) -> web.Response:
    """A service's JSON error (a 4xx for bad input, 429 busy, 503 draining) goes to the
    client as it is; anything else becomes a readable 502."""
    raw = await response.content.read(MAX_ERROR_BODY + 1)
    if response.content_type == "application/json" and len(raw) <= MAX_ERROR_BODY and _is_json(raw):
        if response.status >= 500:
            metrics.downstream_errors.labels(service, "error_status").inc()
        headers = {name: response.headers[name] for name in PASSED_ERROR_HEADERS if name in response.headers}
        return web.Response(
            body=raw, status=response.status, content_type="application/json", headers=headers
        )
    metrics.downstream_errors.labels(service, "bad_answer").inc()
    raise BadDownstreamAnswer(service, response.status)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


async def answer_with_error_event(request: web.Request, error: TinyChatError) -> web.StreamResponse:
    """The client asked for a stream: a service failure before it started is still told
    as a stream, one error event and `done`."""
    stream = EventStream(request)
    await stream.start()
    try:
        await stream.fail(error)
    finally:
        await stream.close()
    return stream.response


class JsonCache:
    """GET a service's small JSON document, remembering the answer for a few seconds.
    A failure is remembered briefly too, so a down service is not asked on every request.
    Concurrent callers share one look-up."""

    def __init__(self, session: aiohttp.ClientSession, ttl: float, timeout: float = 2.0) -> None:
        self._session = session
        self._ttl = ttl
        self._failure_ttl = min(ttl, 2.0)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._entries: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, url: str) -> dict[str, Any] | None:
        entry = self._entries.get(url)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        async with self._locks.setdefault(url, asyncio.Lock()):
            entry = self._entries.get(url)
            if entry is not None and entry[0] > time.monotonic():
                return entry[1]
            value = await fetch_json(self._session, url, self._timeout)
            ttl = self._ttl if value is not None else self._failure_ttl
            self._entries[url] = (time.monotonic() + ttl, value)
            return value


async def fetch_json(
    session: aiohttp.ClientSession, url: str, timeout: aiohttp.ClientTimeout
) -> dict[str, Any] | None:
    """The JSON object at `url`, or None when the service is down or answers anything else."""
    try:
        async with session.get(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            data = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.info("could not read %s: %s", url, exc)
        return None
    return data if isinstance(data, dict) else None


async def probe_ready(
    session: aiohttp.ClientSession, base_url: str, timeout: aiohttp.ClientTimeout
) -> dict[str, Any]:
    """One service's /readyz, as a small report for /api/health."""
    started = time.perf_counter()
    body: Any = None
    try:
        async with session.get(base_url + "/readyz", timeout=timeout) as response:
            with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                body = await response.json(content_type=None)
            status = "ready" if response.status == 200 else "not_ready"
    except (aiohttp.ClientError, TimeoutError):
        status = "unreachable"
    report = {"status": status, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    unavailable = body.get("unavailable") if isinstance(body, dict) else None
    if isinstance(unavailable, str):
        report["unavailable"] = unavailable[:500]  # e.g. why RLM is off
    return report
