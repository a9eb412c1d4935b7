"""Loopback addresses and servers for tests: free ports, and apps served on port 0."""

from __future__ import annotations

import socket

from aiohttp import web
from aiohttp.test_utils import TestServer


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it, then takes it back)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


def server_url(server: TestServer) -> str:
    """The base URL of a pytest-aiohttp TestServer, without the trailing slash."""
    return str(server.make_url("")).rstrip("/")


async def serve_app(app: web.Application, runners: list[web.AppRunner]) -> str:
    """Serve `app` on a loopback port with handler cancellation, as run_service does;
    its runner goes into `runners` for the caller to clean up. Returns the base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    runners.append(runner)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}"
