"""CORS, only when ALLOWED_ORIGINS is set: the listed origins may call /api/* from a browser.
With the list empty no CORS header is ever sent, so browsers keep other sites out."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from tinychat_common.errors import json_error

from .app_keys import CORS_ORIGINS

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type, X-RLM-Passcode"
EXPOSED_HEADERS = "Retry-After"
PREFLIGHT_MAX_AGE = "600"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin and request.path.startswith("/api/") and origin in request.app[CORS_ORIGINS]:
        return origin
    return None


@web.middleware
async def cors_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return await handler(request)
    origin = _allowed_origin(request)
    if origin is None:
        return json_error(403, "forbidden", "This origin may not call the TinyChat API.")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin",
        },
    )


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    origin = _allowed_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers["Vary"] = "Origin"


def install_cors(app: web.Application, origins: list[str]) -> None:
    """Call before the app is frozen; a no-op when `origins` is empty."""
    app[CORS_ORIGINS] = frozenset(origins)
    if not origins:
        return
    app.middlewares.insert(0, cors_preflight)
    # on_response_prepare reaches streamed answers too.
    app.on_response_prepare.append(add_cors_headers)
