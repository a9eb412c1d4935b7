"""The gateway's app factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError, version

import aiohttp
from aiohttp import web
from tinychat_common.internal_auth import is_loopback
from tinychat_common.metrics import METRICS
from tinychat_common.service import base_app, client_session_context

from .access import install_access_guard
from .app_keys import AUTH, GATEWAY, SERVICE_INFO, SESSION
from .auth import install_auth
from .config import GatewaySettings
from .cors import install_cors
from .downstream import JsonCache
from .metrics import GatewayMetrics
from .openapi import build_openapi
from .passcode import PasscodeGuard
from .ratelimit import SlidingWindow
from .routes import add_routes
from .state import RATE_WINDOW_SECONDS, Gateway

__all__ = ["GATEWAY", "create_app"]

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def gateway_version() -> str:
    try:
        return version("tinychat-gateway")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: GatewaySettings) -> web.Application:
    app = base_app(settings, "gateway", client_max_size=settings.body_limit)
    install_cors(app, settings.allowed_origins)
    # Before CORS: a preflight from a rebinding page is refused for its Host first.
    install_access_guard(app, settings)
    release = gateway_version()
    app[GATEWAY] = Gateway(
        settings=settings,
        metrics=GatewayMetrics(app[METRICS]),
        passcode=PasscodeGuard(
            settings.rlm_passcode,
            settings.rlm_passcode_max_failures,
            settings.rlm_passcode_window_seconds,
            settings.rlm_passcode_global_max_failures,
        ),
        version=release,
        rate_limits=rate_limit_windows(settings),
        openapi=build_openapi(release),
    )
    app.cleanup_ctx.append(downstream_session(settings))
    app.cleanup_ctx.append(service_info_cache)
    app.cleanup_ctx.append(sweep_rate_limits)
    app.on_startup.append(warn_about_open_rlm)
    app.on_startup.append(warn_about_missing_web_ui)
    app.on_startup.append(warn_about_open_access)
    install_auth(app, settings)  # its routes before add_routes' catch-all
    add_routes(app)
    return app


def rate_limit_windows(settings: GatewaySettings) -> dict[str, SlidingWindow]:
    limits = {
        "chat": settings.rate_limit_chat,
        "image": settings.rate_limit_image,
        "rlm": settings.rate_limit_rlm,
    }
    return {kind: SlidingWindow(limit, RATE_WINDOW_SECONDS) for kind, limit in limits.items() if limit > 0}


def downstream_session(settings: GatewaySettings) -> CleanupContext:
    """The app's one ClientSession to the services, with no cap on open connections:
    each relayed stream holds one for its lifetime (500 streams are 500 connections)."""
    return client_session_context(
        SESSION,
        connector_factory=lambda: aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        internal_token=settings.bearer_token,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=settings.downstream_connect_timeout,
            sock_read=settings.downstream_idle_timeout,
        ),
        auto_decompress=False,
    )


async def service_info_cache(app: web.Application) -> AsyncIterator[None]:
    """The services' config documents, asked over the app's session once it is open."""
    app[SERVICE_INFO] = JsonCache(app[SESSION], app[GATEWAY].settings.config_cache_seconds)
    yield


async def sweep_rate_limits(app: web.Application) -> AsyncIterator[None]:
    """Forget clients that have gone quiet, so the windows do not grow forever."""
    gateway = app[GATEWAY]

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            auth = app[AUTH]
            windows = (*gateway.rate_limits.values(), gateway.passcode.failures, auth.failures)
            for window in windows:
                window.sweep()

    task = asyncio.create_task(sweep_forever())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def warn_about_open_rlm(app: web.Application) -> None:
    if not app[GATEWAY].passcode.required:
        log.warning(
            "RLM_PASSCODE is not set: anyone who can reach this gateway can start RLM jobs "
            "(which run model-written code in the sandbox). Set RLM_PASSCODE to require one."
        )


async def warn_about_open_access(app: web.Application) -> None:
    settings = app[GATEWAY].settings
    if settings.auth_mode == "none" and not is_loopback(settings.host):
        log.warning(
            "AUTH_MODE=none while listening on %s: anyone who can reach this gateway can use it "
            "(and spend the model API's credit). See README, Exposing TinyChat.",
            settings.host,
        )


async def warn_about_missing_web_ui(app: web.Application) -> None:
    web_dir = app[GATEWAY].settings.web_dir
    if not (web_dir / "index.html").is_file():
        log.warning("no index.html in WEB_DIR=%s: the API works, the browser UI will answer 404", web_dir)
    elif not (web_dir / "node_modules").is_dir():
        log.warning("no node_modules in %s: run `npm ci` there (make web) for the UI's libraries", web_dir)
