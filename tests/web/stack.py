"""The real gateway + chat-service, a fake OpenAI upstream and a fake image/RLM service, all
on 127.0.0.1 port 0, running in one background thread's event loop (Playwright's sync API
owns the test thread). With `real_rlm=True` the gateway talks to the REAL rlm-service
(process sandbox) instead, whose every LM call goes through chat-service to the fake upstream."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web
from tinychat_chat.app import create_app as create_chat_app
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import FakeServer
from tests.support.chat_service import chat_settings_for
from tests.support.net import serve_app

T = TypeVar("T")
START_TIMEOUT = 20


def png_data_uri(width: int = 64, height: int = 48, rgb: tuple[int, int, int] = (91, 77, 224)) -> str:
    """A real PNG, made without any imaging library."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode()


class FakeDownstream(FakeServer):
    """Stands in for image-service and rlm-service: speaks their internal SSE format and
    plays a scripted list of events per request."""

    def __init__(self) -> None:
        super().__init__()
        self.image_events: list[dict[str, Any]] = []
        self.rlm_events: list[dict[str, Any]] = []
        self.event_delay = 0.05
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.app.router.add_post("/v1/images/stream", self._images)
        self.app.router.add_post("/v1/rlm/stream", self._rlm)
        self.app.router.add_get("/v1/images/config", self._image_config)
        self.app.router.add_get("/v1/rlm/config", self._rlm_config)
        self.app.router.add_get("/readyz", self._ready)
        self.app.router.add_get("/healthz", self._ready)

    async def _ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    async def _image_config(self, request: web.Request) -> web.Response:
        return web.json_response({"enabled": True, "provider": "fake"})

    async def _rlm_config(self, request: web.Request) -> web.Response:
        return web.json_response({"enabled": True, "max_iterations": 20, "sandbox": "process"})

    async def _play(
        self, request: web.Request, kind: str, events: list[dict[str, Any]]
    ) -> web.StreamResponse:
        self.requests.append((kind, await request.json()))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            await asyncio.sleep(self.event_delay)
        await response.write_eof()
        return response

    async def _images(self, request: web.Request) -> web.StreamResponse:
        return await self._play(request, "image", self.image_events)

    async def _rlm(self, request: web.Request) -> web.StreamResponse:
        return await self._play(request, "rlm", self.rlm_events)


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class Stack:
    def __init__(
        self,
        rlm_passcode: str = "",
        *,
        real_rlm: bool = False,
        demo_model: bool = False,
        rlm_overrides: dict[str, Any] | None = None,
        **gateway_overrides: object,
    ) -> None:
        self.rlm_passcode = rlm_passcode
        self.real_rlm = real_rlm
        self.rlm_overrides = rlm_overrides or {}  # RlmSettings fields of the real rlm-service
        # With `demo_model`, chat-service talks to the built-in demo model (as `make run` does
        # without an API key) instead of the scripted fake.
        self.demo_model = demo_model
        self.gateway_overrides = gateway_overrides  # GatewaySettings fields (e.g. AUTH_MODE)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tinychat-stack", daemon=True)
        self.runners: list[web.AppRunner] = []
        self.upstream: FakeOpenAI
        self.downstream: FakeDownstream
        self.url = ""
        # Every request line the gateway received, with its Referer: what an access log holds.
        self.access_log: list[str] = []

    def call(self, coro: Awaitable[T], timeout: float = START_TIMEOUT) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def run(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on the stack's loop (for anything that touches the fakes' state)."""

        async def wrapper() -> T:
            return fn()

        return self.call(wrapper())

    async def _serve(self, app: web.Application) -> str:
        return await serve_app(app, self.runners)

    async def _start(self) -> None:
        self.upstream = await FakeOpenAI(models=["fake-model", "fake-vision"]).start()
        self.downstream = await FakeDownstream().start()
        chat_settings = chat_settings_for(self.upstream, openai_api_key="sk-test-secret")
        if self.demo_model:
            chat_settings = await self._demo_chat_settings()
        chat_url = await self._serve(create_chat_app(chat_settings))
        rlm_url = await self._serve_real_rlm(chat_url) if self.real_rlm else self.downstream.base_url
        gateway_settings = GatewaySettings(
            chat_service_url=chat_url,
            image_service_url=self.downstream.base_url,
            rlm_service_url=rlm_url,
            rlm_passcode=self.rlm_passcode,
            config_cache_seconds=0,
            # Every test comes from 127.0.0.1: per-client limits would couple the tests.
            rate_limit_image=0,
            rate_limit_rlm=0,
            **self.gateway_overrides,
        )
        self.url = await self._serve_logged(create_gateway_app(gateway_settings))

    async def _serve_logged(self, app: web.Application) -> str:
        logger = logging.getLogger(f"tinychat.test.access.{id(self)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(_ListHandler(self.access_log))
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=logger, access_log_format='%r %s "%{Referer}i"'
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def _demo_chat_settings(self):
        from tinychat_demo.answer import DEMO_MODEL
        from tinychat_demo.app import create_app as create_demo_app
        from tinychat_demo.config import DemoSettings

        demo_url = await self._serve(create_demo_app(DemoSettings(demo_chunk_delay_ms=1)))
        return chat_settings_for(
            self.upstream,
            openai_api_url=demo_url + "/v1",
            default_model=DEMO_MODEL,
            available_models=DEMO_MODEL,
        )

    async def _serve_real_rlm(self, chat_url: str) -> str:
        # Imported here: only the stacks that ask for it need rlm-service and its harness.
        from tinychat_rlm.app import create_app as create_rlm_app

        from tests.rlm.harness import rlm_settings

        return await self._serve(create_rlm_app(rlm_settings(chat_url, "process", **self.rlm_overrides)))

    async def _stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        await self.downstream.stop()
        await self.upstream.stop()

    def start(self) -> Stack:
        self.thread.start()
        self.call(self._start())
        return self

    def stop(self) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def reset(self) -> None:
        def clear() -> None:
            self.upstream._queue.clear()
            self.upstream._responder = None
            self.upstream.history.clear()
            self.upstream.disconnected.clear()
            self.downstream.image_events = []
            self.downstream.rlm_events = []
            self.downstream.requests.clear()
            self.access_log.clear()

        self.run(clear)

    def wait_for_disconnect(self, timeout: float = 10) -> bool:
        async def wait() -> bool:
            try:
                await asyncio.wait_for(self.upstream.disconnected.wait(), timeout)
            except TimeoutError:
                return False
            return True

        return self.call(wait(), timeout=timeout + 5)
