"""/healthz (alive), /readyz (ready to serve) and /metrics (Prometheus text)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import METRICS

ReadyCheck = Callable[[web.Application], Awaitable[dict[str, object]]]


class Lifecycle:
    """Mutable, because an app's state may not be replaced once it has started."""

    def __init__(self) -> None:
        self.draining = False


LIFECYCLE = web.AppKey("tinychat_lifecycle", Lifecycle)


def is_draining(app: web.Application) -> bool:
    lifecycle = app.get(LIFECYCLE)
    return lifecycle is not None and lifecycle.draining


READY_CHECKS = web.AppKey("tinychat_ready_checks", list)


def add_ready_check(app: web.Application, check: ReadyCheck) -> None:
    """A check returns details for /readyz and raises (any exception) when not ready."""
    app[READY_CHECKS].append(check)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    if is_draining(app):
        return web.json_response({"status": "shutting_down"}, status=503)
    details: dict[str, object] = {}
    for check in app[READY_CHECKS]:
        try:
            details.update(await check(app))
        except Exception as exc:  # a probe reports, it does not fail
            return web.json_response({"status": "not_ready", "detail": str(exc)}, status=503)
    return web.json_response({"status": "ready", **details})


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def add_probe_routes(app: web.Application) -> None:
    app.setdefault(READY_CHECKS, [])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
