from __future__ import annotations

from aiohttp import web

from . import handlers


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/images/stream", handlers.stream_image)
    app.router.add_get("/v1/images/config", handlers.image_config)
