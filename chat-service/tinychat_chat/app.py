"""The chat-service application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from tinychat_common.chatlog import chat_log_context
from tinychat_common.metrics import METRICS
from tinychat_common.service import base_app, client_session_context

from .app_keys import CHAT, CHAT_LOG, SESSION, SETTINGS
from .catalog import ModelCatalog
from .chat import ChatMetrics, ChatService
from .config import ChatSettings
from .endpoints import Endpoint, Endpoints, host_label
from .routes import add_routes
from .upstream import UpstreamClient, session_timeout

__all__ = ["CHAT", "CHAT_LOG", "SESSION", "SETTINGS", "create_app"]

# An image of MAX_IMAGE_SIZE_MB travels as base64 (4/3 larger) inside the JSON body,
# next to up to MAX_CONVERSATION_HISTORY messages of text.
_BODY_HEADROOM = 4 * 1024 * 1024


def body_limit(settings: ChatSettings) -> int:
    return int(settings.max_image_bytes * 4 / 3) + 4 * settings.max_message_length + _BODY_HEADROOM


def create_app(settings: ChatSettings) -> web.Application:
    app = base_app(settings, "chat-service", client_max_size=body_limit(settings))
    app[SETTINGS] = settings
    app.cleanup_ctx.append(
        client_session_context(
            SESSION,
            timeout=session_timeout(settings),
            # No cap on open connections: each open stream holds one for its lifetime.
            connector_factory=lambda: aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        )
    )
    app.cleanup_ctx.append(chat_log_context(CHAT_LOG, settings.chat_log))
    app.cleanup_ctx.append(chat_service_context)
    add_routes(app)
    return app


async def chat_service_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[CHAT] = ChatService(
        settings, build_endpoints(settings, app[SESSION]), app[CHAT_LOG], ChatMetrics(app[METRICS])
    )
    yield


def build_endpoints(settings: ChatSettings, session: aiohttp.ClientSession) -> Endpoints:
    """CHAT_ENDPOINTS' endpoints when configured, else the one OPENAI_API_URL endpoint."""
    endpoints: list[Endpoint] = []
    for config in settings.endpoint_configs:
        key = config.key()
        hint = f"the key of endpoint '{config.name}'"
        upstream = UpstreamClient(session, settings, url=config.url, key=key, key_hint=hint)
        models = None if config.models == "auto" else [m.strip() for m in config.models if m.strip()]
        catalog = ModelCatalog(
            upstream,
            models=list(dict.fromkeys(models)) if models is not None else None,
            default_model=models[0] if models else "",
            cache_seconds=settings.models_cache_seconds,
        )
        titles = config.titles if config.titles is not None else not key
        label = config.label or config.name
        endpoints.append(Endpoint(config.name, label, upstream, catalog, titles, config.model_settings))
    if not endpoints:
        upstream = UpstreamClient(session, settings)
        label = host_label(settings.openai_api_url)
        catalog = ModelCatalog.from_settings(settings, upstream)
        endpoints.append(Endpoint("", label, upstream, catalog, settings.titles_enabled))
    return Endpoints(endpoints, settings.default_model, settings.model_settings)
