"""Prometheus metrics: one registry per app (so tests can build many apps in one process),
and the middleware that counts requests by route and status."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

METRICS: web.AppKey[ServiceMetrics] = web.AppKey("tinychat_metrics")
# nginx's "client closed request": the client left before the answer ended. Not an error of
# ours, so never counted as a 500.
CLIENT_CLOSED_STATUS = 499
# The request flag streaming.mark_client_closed sets.
CLIENT_CLOSED = web.RequestKey("tinychat_client_closed", bool)


class ServiceMetrics:
    """The metrics every service has; a service adds its own on `registry`."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tinychat_http_requests",
            "HTTP requests answered, by route and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "tinychat_http_request_duration_seconds",
            "Time to answer a request (for streams: until the stream ends).",
            ["route"],
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "tinychat_active_streams", "SSE streams open right now.", registry=self.registry
        )

    def counter(self, name: str, doc: str, labels: list[str] | None = None) -> Counter:
        return Counter(name, doc, labels or [], registry=self.registry)

    def gauge(self, name: str, doc: str, labels: list[str] | None = None) -> Gauge:
        return Gauge(name, doc, labels or [], registry=self.registry)

    def histogram(self, name: str, doc: str, labels: list[str] | None = None, **kw: Any) -> Histogram:
        return Histogram(name, doc, labels or [], registry=self.registry, **kw)


def route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = CLIENT_CLOSED_STATUS if request.get(CLIENT_CLOSED) else response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        # Handler cancellation: the client closed the connection.
        status = CLIENT_CLOSED_STATUS
        raise
    finally:
        route = route_name(request)
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
