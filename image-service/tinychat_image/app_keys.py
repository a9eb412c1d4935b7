"""The app-wide objects of image-service, each under a typed key (no globals)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram
from tinychat_common.chatlog import ChatLog
from tinychat_common.limiter import ConcurrencyLimiter

from .config import ImageSettings
from .postprocess import Workers
from .providers import ImageProvider


class ImageMetrics:
    def __init__(self, generations: Counter, seconds: Histogram, tokens_in_use: Gauge) -> None:
        self.generations = generations
        self.seconds = seconds
        self.tokens_in_use = tokens_in_use


SETTINGS = web.AppKey("image_settings", ImageSettings)
HTTP = web.AppKey("image_http", aiohttp.ClientSession)
PROVIDER = web.AppKey("image_provider", ImageProvider)
LIMITER = web.AppKey("image_limiter", ConcurrencyLimiter)
CHAT_LOG = web.AppKey("image_chat_log", ChatLog)
IMAGE_METRICS = web.AppKey("image_metrics", ImageMetrics)
WORKERS = web.AppKey("image_workers", Workers)
