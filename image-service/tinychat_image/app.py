"""image-service: `/image <prompt>` → SwarmUI or OpenAI Images → a JPEG data URI.

The app-wide objects live under the typed keys of `app_keys` (shared with the handlers):
SETTINGS, HTTP (the one ClientSession), PROVIDER (None when IMAGE_PROVIDER=none),
LIMITER (MAX_CONCURRENT_IMAGES, shared through Redis when REDIS_URL is set), CHAT_LOG,
IMAGE_METRICS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from tinychat_common.chatlog import chat_log_context
from tinychat_common.limiter import limiter_context
from tinychat_common.metrics import METRICS
from tinychat_common.probes import add_ready_check
from tinychat_common.service import base_app, client_session_context

from .app_keys import CHAT_LOG, HTTP, IMAGE_METRICS, LIMITER, PROVIDER, SETTINGS, WORKERS, ImageMetrics
from .config import ImageSettings
from .openai_images import OpenAIImages
from .postprocess import Workers
from .providers import ImageProvider
from .routes import add_routes
from .swarmui import SwarmUI

__all__ = ["CHAT_LOG", "HTTP", "IMAGE_METRICS", "LIMITER", "PROVIDER", "SETTINGS", "create_app"]

# Generations are long; seconds-scale buckets up to the default IMAGE_TIMEOUT.
_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, float("inf"))


def create_app(settings: ImageSettings) -> web.Application:
    app = base_app(settings, "image-service")
    app[SETTINGS] = settings
    app[IMAGE_METRICS] = image_metrics(app)
    app.cleanup_ctx.append(
        client_session_context(
            HTTP,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.image_connect_timeout),
        )
    )
    app.cleanup_ctx.append(workers_context)
    app.cleanup_ctx.append(provider_context)
    app.cleanup_ctx.append(limiter_context(LIMITER, "image", settings.max_concurrent_images, settings))
    app.cleanup_ctx.append(chat_log_context(CHAT_LOG, settings.chat_log))
    add_routes(app)
    add_ready_check(app, readiness)
    return app


def make_provider(
    http: aiohttp.ClientSession, workers: Workers, settings: ImageSettings
) -> ImageProvider | None:
    if settings.image_provider == "swarmui":
        return SwarmUI(http, workers, settings)
    if settings.image_provider == "openai":
        return OpenAIImages(http, workers, settings)
    return None


async def workers_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    workers = Workers(settings.image_worker_processes if settings.enabled else 0)
    app[WORKERS] = workers
    # Started in the background: the service is ready at once, the first image rarely waits.
    warm_up = asyncio.get_running_loop().create_task(workers.warm_up())
    yield
    warm_up.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await warm_up
    await workers.close()


async def provider_context(app: web.Application) -> AsyncIterator[None]:
    provider = make_provider(app[HTTP], app[WORKERS], app[SETTINGS])
    if provider is not None:
        app[PROVIDER] = provider
    yield
    if provider is not None:
        await provider.close()


def image_metrics(app: web.Application) -> ImageMetrics:
    metrics = app[METRICS]
    return ImageMetrics(
        generations=metrics.counter(
            "tinychat_image_generations",
            "Image generations finished, by provider and outcome (ok, cancelled, or an error code).",
            ["provider", "outcome"],
        ),
        seconds=metrics.histogram(
            "tinychat_image_generation_duration_seconds",
            "Time from request to image (or error), by provider.",
            ["provider"],
            buckets=_DURATION_BUCKETS,
        ),
        tokens_in_use=metrics.gauge(
            "tinychat_image_tokens_in_use",
            "Generation slots (concurrency tokens) this replica holds right now.",
        ),
    )


async def readiness(app: web.Application) -> dict[str, object]:
    settings = app[SETTINGS]
    return {
        "provider": settings.image_provider,
        "images_in_progress": await app[LIMITER].in_use(),
        "max_concurrent_images": settings.max_concurrent_images,
    }
