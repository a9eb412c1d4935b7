"""The gateway's URL map. The web UI's catch-all comes last so it never hides an API route."""

from __future__ import annotations

from aiohttp import web

from . import handlers, titles


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/chat/stream", handlers.chat_stream)
    app.router.add_post("/api/chat/title", titles.chat_title)
    app.router.add_post("/api/rlm/validate", handlers.rlm_validate)
    app.router.add_get("/api/config", handlers.config)
    app.router.add_get("/api/health", handlers.health)
    app.router.add_get("/api/openapi.json", handlers.openapi)
    app.router.add_get("/vendor/{tail:.+}", handlers.vendor_files)
    app.router.add_get("/{tail:.*}", handlers.app_files)
