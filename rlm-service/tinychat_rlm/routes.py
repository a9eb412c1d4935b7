"""rlm-service's routes (the probes come from base_app)."""

from __future__ import annotations

from aiohttp import web

from . import handlers


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/rlm/stream", handlers.rlm_stream)
    app.router.add_get("/v1/rlm/config", handlers.rlm_config)
