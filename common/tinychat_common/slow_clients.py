"""Slow clients: a connection that trickles its request head, or its body, is cut off with
408 within a bounded time; the gateway also caps the connections one client holds open.

aiohttp has no such limits of its own: a client sending one header byte every few seconds
holds its connection (and a file descriptor) forever, and enough of them starve the
service. The head deadline lives in the connection's protocol (the app sees a request only
once its head is complete); the body deadline is a middleware that reads the body within
REQUEST_BODY_TIMEOUT before any handler runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from .errors import PayloadTooLarge, TinyChatError

log = logging.getLogger(__name__)

BODY_LIMIT = web.AppKey("tinychat_body_limit", int)
# The setting that raises BODY_LIMIT, named in the 413 so the person knows what to change.
BODY_LIMIT_SETTING = web.AppKey("tinychat_body_limit_setting", str)
BODY_TIMEOUT = web.AppKey("tinychat_body_timeout", float)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
OwnBodyHandler = TypeVar("OwnBodyHandler", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])


class RequestTimeout(TinyChatError):
    status = 408
    code = "request_timeout"
    default_message = "The request was not sent in time."


def raw_answer(status: int, reason: str, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer for a connection that never got as far as a request."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionLimits:
    """What the protocols of one server share: the head deadline, and open connections
    per client address (0 = no cap; TRUSTED_PROXIES carry many clients and are exempt)."""

    def __init__(self, header_timeout: float, per_client: int = 0, exempt: Sequence[Network] = ()) -> None:
        self.header_timeout = header_timeout
        self.per_client = per_client
        self.exempt = tuple(exempt)
        self.open: Counter[str] = Counter()

    def is_exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.exempt)


class DeadlineRequestHandler(RequestHandler):
    limits: ConnectionLimits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._busy = False
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        limits = self.limits
        if limits.per_client and self._peer and not limits.is_exempt(self._peer):
            if limits.open[self._peer] >= limits.per_client:
                self._peer = ""  # not counted: it is closed at once
                log.warning("refused a connection: over %d open from one client", limits.per_client)
                self._refuse(429, "Too Many Requests", "too_many_connections", "Too many open connections.")
                return
            limits.open[self._peer] += 1
        else:
            self._peer = ""
        self._arm_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_deadline()
        if self._peer:
            self.limits.open[self._peer] -= 1
            if self.limits.open[self._peer] <= 0:
                del self.limits.open[self._peer]
            self._peer = ""
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes while no request is in hand start a new head: it must be complete in time.
        if not self._busy and not self._messages and getattr(self, "_head_timer", None) is None:
            self._arm_head_deadline()
        seen = self._request_count
        super().data_received(data)
        if self._request_count != seen:
            self._cancel_head_deadline()

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        self._busy = True
        self._cancel_head_deadline()
        try:
            return await super()._handle_request(*args, **kwargs)
        finally:
            self._busy = False

    def _arm_head_deadline(self) -> None:
        if self.limits.header_timeout > 0:
            loop = asyncio.get_running_loop()
            self._head_timer = loop.call_later(self.limits.header_timeout, self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._busy or self._messages:
            return
        seconds = self.limits.header_timeout
        self._refuse(408, "Request Timeout", "request_timeout", f"The request head took over {seconds:g} s.")

    def _refuse(self, status: int, reason: str, code: str, detail: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(raw_answer(status, reason, code, detail))
        self.force_close()
        transport.close()


def limit_connections(server: Server, limits: ConnectionLimits) -> None:
    """Make `server` build DeadlineRequestHandlers sharing `limits`."""
    handler_class: type[DeadlineRequestHandler] = type(
        "LimitedRequestHandler", (DeadlineRequestHandler,), {"limits": limits}
    )

    class LimitedServer(Server):
        def __call__(self) -> RequestHandler:
            return handler_class(self, loop=self._loop, **self._kwargs)

    server.__class__ = LimitedServer


class LimitedAppRunner(web.AppRunner):
    """An AppRunner whose connections have the head deadline and the per-client cap."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        limit_connections(server, self._limits)
        return server


# Set on a handler that reads its body itself, in chunks, within BODY_TIMEOUT and BODY_LIMIT
# (rlm-service's stream: tens of MB it never holds whole); the middleware leaves it alone.
READS_OWN_BODY = "tinychat_reads_own_body"


def reads_own_body(handler: OwnBodyHandler) -> OwnBodyHandler:
    setattr(handler, READS_OWN_BODY, True)
    return handler


@web.middleware
async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request's whole body within the app's body deadline, before the handler: a
    client trickling 20 MB gets 408, not a connection held for hours."""
    timeout = request.app.get(BODY_TIMEOUT, 0.0)
    if getattr(request.match_info.handler, READS_OWN_BODY, False):
        answer: web.StreamResponse = await handler(request)
        return answer
    if timeout > 0 and request.body_exists and request.method in ("POST", "PUT", "PATCH"):
        try:
            async with asyncio.timeout(timeout):
                await request.read()  # kept by aiohttp: the handler's read() gets it at once
        except TimeoutError:
            # Not force-closed: aiohttp then lingers (reads and drops the rest for up to
            # 10 s) so the client can read this answer before the connection closes.
            return RequestTimeout(f"The request body took over {timeout:g} s to arrive.").to_response()
        except web.HTTPRequestEntityTooLarge:
            response = body_too_large(request).to_response()
            response.force_close()
            return response
    return await handler(request)


def body_too_large(request: web.Request) -> PayloadTooLarge:
    """The 413 for a body over the app's limit, naming the setting that raises it."""
    limit = request.app.get(BODY_LIMIT, 0) or request.client_max_size
    setting = request.app.get(BODY_LIMIT_SETTING, "")
    named = f" ({setting})" if setting else ""
    return PayloadTooLarge(f"The request body is larger than the {limit}-byte limit{named}.")
