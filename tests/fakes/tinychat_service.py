"""A fake TinyChat internal service (chat, image or rlm): a real aiohttp server on port 0
speaking the internal SSE format, for gateway tests of what a real service rarely does on
cue (die mid-stream, stall, answer odd statuses).

Script each stream request with `enqueue(Script(...))`; the default is a short answer that
ends with `done`. `history` records (path, JSON body, headers); `disconnects` counts
clients that left mid-stream, and `disconnected` is set when one does.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .server import FakeServer


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


DONE = frame({"done": True, "finish_reason": "stop", "usage": None})


@dataclass
class Script:
    # Each item is written with its own write() call: split frames across items to test
    # reassembly.
    writes: list[bytes] = field(default_factory=lambda: [frame({"content": "Hi"}), DONE])
    delay: float = 0.0  # between writes
    then: str = "end"  # after the writes: "end" (clean), "abort" (kill the connection), "stall"
    status: int = 200  # not 200: answer `json_body` (or `text_body`) with this status
    json_body: Any = None
    text_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeService(FakeServer):
    def __init__(self, config: dict[str, Any] | None = None, ready: bool = True) -> None:
        super().__init__()
        self.config = config or {}
        self.ready = ready
        self.history: list[tuple[str, Any, dict[str, str]]] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self.config_calls = 0
        self._queue: list[Script] = []
        for path in ("/v1/chat/stream", "/v1/images/stream", "/v1/rlm/stream"):
            self.app.router.add_post(path, self._stream)
        for path in ("/v1/models", "/v1/images/config", "/v1/rlm/config"):
            self.app.router.add_get(path, self._config)
        self.app.router.add_get("/readyz", self._readyz)

    def enqueue(self, *scripts: Script) -> None:
        self._queue.extend(scripts)

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not_ready"}, status=503)

    async def _config(self, request: web.Request) -> web.Response:
        self.config_calls += 1
        return web.json_response(self.config)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.history.append((request.path, body, dict(request.headers)))
        script = self._queue.pop(0) if self._queue else Script()
        if script.status != 200:
            if script.text_body is not None:
                return web.Response(text=script.text_body, status=script.status, headers=script.headers)
            return web.json_response(script.json_body, status=script.status, headers=script.headers)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **script.headers})
        await response.prepare(request)
        try:
            for piece in script.writes:
                await response.write(piece)
                if script.delay:
                    await asyncio.sleep(script.delay)
            if script.then == "abort":
                assert request.transport is not None
                request.transport.abort()
                return response
            if script.then == "stall":
                await asyncio.sleep(3600)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            self.disconnected.set()
            raise
        return response
