"""Reference hops: what any two hops cost on this machine, before our code does anything.

    python -m bench.reference_hops tcp --port 9100 --target 127.0.0.1:9000
    python -m bench.reference_hops aiohttp --port 9100 --target http://127.0.0.1:9000/v1/chat/completions

The chat benchmark chains two of each in front of the fake upstream, next to gateway ->
chat-service, so its table shows where the two-hop cost comes from:

- `tcp`: a byte-for-byte TCP proxy on bare asyncio. No HTTP parsing at all: the least a
  Python hop can cost.
- `aiohttp`: the smallest aiohttp relay that does what a TinyChat hop must do at the
  least (read the request, POST it on with one pooled ClientSession, stream the answer's
  bytes back). No validation, no metrics, no error handling: the framework's own floor.

Neither is a service; they exist only to be measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import cast

import aiohttp
from aiohttp import web

from bench.runtime import fast_event_loop, raise_fd_limit

HEALTH_PATHS = ("/healthz", "/readyz")


class _Side(asyncio.Protocol):
    """One connection of a proxied pair; what it reads goes out on the other side."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Side | None = None
        self.early: list[bytes] = []  # read before the other side was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        other = self.other
        if other is not None and other.transport is not None:
            other.transport.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()


class _ClientSide(_Side):
    """The accepted connection: opens its own connection to the target on arrival."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host, self.port = host, port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        target = _Side()
        target.other = self
        try:
            await asyncio.get_running_loop().create_connection(lambda: target, self.host, self.port)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        self.other = target
        assert target.transport is not None
        for data in self.early:
            target.transport.write(data)
        self.early.clear()


async def serve_tcp_proxy(port: int, target: str) -> None:
    host, _, target_port = target.rpartition(":")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _ClientSide(host, int(target_port)), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


TARGET = web.AppKey("target", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {"Content-Type": "application/json"}
    async with request.app[SESSION].post(request.app[TARGET], data=body, headers=headers) as answer:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        while chunk := await answer.content.readany():
            await response.write(chunk)
        await response.write_eof()
        return response


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


def aiohttp_relay_app(target: str) -> web.Application:
    app = web.Application()
    app[TARGET] = target
    app.cleanup_ctx.append(_session)
    app.router.add_post("/{path:.*}", relay)
    for path in HEALTH_PATHS:
        app.router.add_get(path, ok)
    return app


async def serve_aiohttp_relay(port: int, target: str) -> None:
    runner = web.AppRunner(aiohttp_relay_app(target), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    description = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.reference_hops", description=description)
    parser.add_argument("kind", choices=("tcp", "aiohttp"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port (tcp) or the URL to POST to (aiohttp)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit()
    serve = serve_tcp_proxy if args.kind == "tcp" else serve_aiohttp_relay
    with contextlib.suppress(KeyboardInterrupt):
        fast_event_loop(serve(args.port, args.target))


if __name__ == "__main__":
    main()
