"""What every service's app factory and `__main__` share.

`base_app()` returns an Application with the common middlewares, probes, metrics and
security headers; `run_service()` serves it with handler cancellation (a client that goes
away cancels the work behind it) and a graceful shutdown:

on SIGTERM/SIGINT the service reports not-ready and answers new requests with 503, lets
open streams finish for `SHUTDOWN_GRACE_SECONDS`, then ends the rest with an error event
and `done`, and stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import ShuttingDown, error_middleware
from .internal_auth import bearer_headers, check_internal_token, install_internal_auth
from .logs import configure_logging
from .metrics import METRICS, ServiceMetrics, metrics_middleware
from .probes import LIFECYCLE, Lifecycle, add_probe_routes, is_draining
from .security import install_security_headers
from .settings import S, ServiceSettings
from .slow_clients import (
    BODY_LIMIT,
    BODY_LIMIT_SETTING,
    BODY_TIMEOUT,
    ConnectionLimits,
    LimitedAppRunner,
    read_body_in_time,
)
from .streaming import KEEPALIVE_SECONDS, OPEN_STREAMS

log = logging.getLogger(__name__)

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The kernel caps it at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 4096


@web.middleware
async def refuse_while_draining(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_draining(request.app) and request.path not in PROBE_PATHS:
        return ShuttingDown().to_response()
    return await handler(request)


# The services behind the gateway: their APIs need INTERNAL_TOKEN.
INTERNAL_SERVICES = frozenset({"chat-service", "image-service", "rlm-service"})


def base_app(
    settings: ServiceSettings,
    service: str,
    *,
    client_max_size: int = 1024**2,
    client_max_size_setting: str = "",
) -> web.Application:
    app = web.Application(
        client_max_size=client_max_size,
        middlewares=[refuse_while_draining, metrics_middleware, error_middleware, read_body_in_time],
    )
    app[BODY_LIMIT] = client_max_size
    app[BODY_LIMIT_SETTING] = client_max_size_setting
    app[BODY_TIMEOUT] = settings.request_body_timeout
    if service in INTERNAL_SERVICES:
        install_internal_auth(app, settings.bearer_token)
    app[METRICS] = ServiceMetrics(service)
    app[KEEPALIVE_SECONDS] = settings.keepalive_seconds
    # Made now: an app's state may not change once it has started.
    app[OPEN_STREAMS] = weakref.WeakSet()
    app[LIFECYCLE] = Lifecycle()
    add_probe_routes(app)
    install_security_headers(app)
    return app


def client_session_context(
    key: web.AppKey[aiohttp.ClientSession],
    *,
    connector_factory: Callable[[], aiohttp.BaseConnector] | None = None,
    internal_token: str = "",
    **session_kwargs: Any,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that opens the app's one ClientSession under `key`.

    `connector_factory` builds the connector inside the running loop, e.g.
    `lambda: aiohttp.TCPConnector(limit=0)` where aiohttp's default of 100 open
    connections would queue streams. `internal_token` goes out on every request, for a
    session that calls TinyChat's own services (never for one that calls a provider)."""

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        kwargs = dict(session_kwargs)
        if internal_token:
            kwargs["headers"] = {**kwargs.get("headers", {}), **bearer_headers(internal_token)}
        if connector_factory is not None:
            kwargs["connector"] = connector_factory()
        session = aiohttp.ClientSession(**kwargs)
        app[key] = session
        yield
        await session.close()

    return session_ctx


async def drain(app: web.Application, grace_seconds: float) -> None:
    """Stop taking work, let open streams finish, then end those still open."""
    app[LIFECYCLE].draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_seconds
    while app.get(OPEN_STREAMS) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    for stream in list(app.get(OPEN_STREAMS, ())):
        await stream.fail(ShuttingDown("The server is shutting down; the answer was cut short."))
        await stream.close()


def connection_limits(settings: ServiceSettings) -> ConnectionLimits:
    per_client = getattr(settings, "max_connections_per_client", 0)
    exempt = getattr(settings, "trusted_proxies", ())
    return ConnectionLimits(settings.request_header_timeout, per_client, exempt)


def make_runner(app: web.Application, settings: ServiceSettings) -> web.AppRunner:
    """The runner every service is served by: handler cancellation, and the slow-client
    limits (request head deadline, connections per client)."""
    return LimitedAppRunner(
        app, connection_limits(settings), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
    )


async def serve(app: web.Application, settings: ServiceSettings, service: str) -> None:
    runner = make_runner(app, settings)
    await runner.setup()
    # A burst of new streams (hundreds of browsers, or the gateway's own connections to a
    # service) must not overflow the accept queue: aiohttp's default of 128 makes the kernel
    # drop connects, which clients retry only after 1 s, 3 s, ... (measured in bench/).
    site = web.TCPSite(runner, settings.host, settings.port, backlog=LISTEN_BACKLOG)
    await site.start()
    log.info("%s listening on http://%s:%s", service, settings.host, settings.port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("%s draining for up to %.0fs", service, settings.shutdown_grace_seconds)
        await drain(app, settings.shutdown_grace_seconds)
    finally:
        await runner.cleanup()


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency): its C transports and
    scheduler cost a fraction of the pure-Python loop's per read and write, which is most
    of what a streaming hop does. None means asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_service(create_app: Callable[[S], web.Application], settings: S, service: str) -> None:
    configure_logging(service, settings.enable_debug_logs)
    if service in INTERNAL_SERVICES:
        refusal = check_internal_token(settings.bearer_token, settings.host, service)
        if refusal:
            print(f"configuration error: {refusal}", file=sys.stderr)
            raise SystemExit(2)
    app = create_app(settings)
    loop_factory = fast_loop_factory()
    log.info("%s runs on %s", service, "uvloop" if loop_factory else "the asyncio event loop")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(app, settings, service))
