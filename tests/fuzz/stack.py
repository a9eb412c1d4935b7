"""The gateway and a real chat-service in front of the fake LLM API, all on loopback port 0,
served from a background thread's event loop: schemathesis drives them with blocking HTTP
from the test thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web
from tinychat_chat.app import create_app as create_chat_app
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.auth import COOKIE, CookieSigner
from tinychat_gateway.config import GatewaySettings

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.chat_service import chat_settings_for
from tests.support.internal import TEST_INTERNAL_TOKEN
from tests.support.net import closed_port_url, serve_app

T = TypeVar("T")
RLM_PASSCODE = "fuzz-passcode"


FUZZ_PASSWORD = "fuzz password 1234"
FUZZ_AUTH_SECRET = "fuzz-cookie-secret-0123456789abcdef"


class FuzzStack:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-stack", daemon=True)
        self._runners: list[web.AppRunner] = []
        self.upstream = FakeOpenAI(models=["fake-model", "fake-vision"])
        self.url = ""
        # A valid login, so the fuzzer reaches every operation behind it.
        self.cookie = f"{COOKIE}={CookieSigner([FUZZ_AUTH_SECRET], 3600).issue()[0]}"

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serve(self, app: web.Application) -> str:
        return await serve_app(app, self._runners)

    async def _start(self) -> None:
        await self.upstream.start()
        # As users run it exposed: password login and internal tokens on.
        chat = chat_settings_for(
            self.upstream, openai_api_key="sk-fuzz-secret", internal_token=TEST_INTERNAL_TOKEN
        )
        gateway = GatewaySettings(
            internal_token=TEST_INTERNAL_TOKEN,
            auth_mode="password",
            auth_password=FUZZ_PASSWORD,
            auth_secret=FUZZ_AUTH_SECRET,
            chat_service_url=await self._serve(create_chat_app(chat)),
            # Image and RLM requests get their readable "not available" stream: the
            # fuzzer checks the gateway's answers, the fault tests the services'.
            image_service_url=closed_port_url(),
            rlm_service_url=closed_port_url(),
            rlm_passcode=RLM_PASSCODE,
            config_cache_seconds=0,
            downstream_connect_timeout=1.0,
        )
        self.url = await self._serve(create_gateway_app(gateway))

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        await self.upstream.stop()

    def start(self) -> FuzzStack:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        try:
            self._call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()
