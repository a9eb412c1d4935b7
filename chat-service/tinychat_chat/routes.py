"""chat-service's routes (the probes come with base_app)."""

from __future__ import annotations

from aiohttp import web

from . import handlers


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/stream", handlers.chat_stream)
    app.router.add_post("/v1/chat/complete", handlers.chat_complete)
    app.router.add_post("/v1/chat/title", handlers.chat_title)
    app.router.add_get("/v1/models", handlers.list_models)
