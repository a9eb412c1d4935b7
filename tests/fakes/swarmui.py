"""A fake SwarmUI: `/API/GetNewSession`, the websocket `/API/GenerateText2ImageWS`, the HTTP
`/API/GenerateText2Image`, `/API/InterruptAll` and `/View/…` outputs, speaking SwarmUI's
wire format (docs/API.md and docs/APIRoutes/T2IAPI.md in mcmonkeyprojects/SwarmUI).

Script it with `enqueue(Generation(...))` (one per generation request, in order); it
records each generation request in `history`, sessions handed out in `sessions_created`,
`interrupts` (session ids), and clients that left mid-generation in `disconnects`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image

from .server import FakeServer


def png_bytes(size: tuple[int, int] = (64, 48), mode: str = "RGBA", color: Any = (200, 30, 30, 255)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


def data_uri(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")


@dataclass
class Generation:
    image: bytes = field(default_factory=png_bytes)
    progress: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    step_delay: float = 0.0
    as_path: bool = False  # answer a View/… path to GET instead of a data URI
    error: str | None = None  # answer {"error": …} instead of an image
    hang: bool = False  # after the progress, send nothing more, ever
    close_without_image: bool = False
    raw: str | None = None  # send exactly this text (malformed answers)
    status: int = 200  # HTTP route only: answer `raw` (or an error body) with this status


INVALID_SESSION = {
    "error": "Invalid session ID. You may need to refresh the page.",
    "error_id": "invalid_session_id",
}


class FakeSwarmUI(FakeServer):
    def __init__(self, websocket: bool = True) -> None:
        super().__init__()
        self.websocket = websocket
        self.history: list[dict[str, Any]] = []
        self.sessions_created: list[str] = []
        self.valid_sessions: set[str] = set()
        self.interrupts: list[str] = []
        self.interrupted = asyncio.Event()
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self.started = asyncio.Event()  # a generation request arrived
        self.outputs: dict[str, bytes] = {}
        self.view_requests: list[str] = []
        self._queue: list[Generation] = []
        self.app.router.add_post("/API/GetNewSession", self._new_session)
        self.app.router.add_get("/API/GenerateText2ImageWS", self._generate_ws)
        self.app.router.add_post("/API/GenerateText2Image", self._generate_http)
        self.app.router.add_post("/API/InterruptAll", self._interrupt)
        self.app.router.add_get("/View/{path:.*}", self._view)

    def enqueue(self, *generations: Generation) -> None:
        self._queue.extend(generations)

    def expire_sessions(self) -> None:
        """What a SwarmUI restart does: every session id it gave out is unknown now."""
        self.valid_sessions.clear()

    def _next(self) -> Generation:
        return self._queue.pop(0) if self._queue else Generation()

    def _image_ref(self, generation: Generation) -> str:
        if not generation.as_path:
            return data_uri(generation.image)
        path = f"local/raw/2024-05-19/{uuid.uuid4().hex[:8]} a cat-flux-1.png"
        self.outputs[path] = generation.image
        return "View/" + path

    async def _new_session(self, request: web.Request) -> web.Response:
        session_id = uuid.uuid4().hex.upper()
        self.sessions_created.append(session_id)
        self.valid_sessions.add(session_id)
        return web.json_response(
            {"session_id": session_id, "user_id": "local", "output_append_user": True, "version": "0.9.fake"}
        )

    async def _generate_ws(self, request: web.Request) -> web.StreamResponse:
        if not self.websocket:
            return web.Response(status=404, text="Not found")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        body = json.loads((await socket.receive()).data)
        self.history.append({"route": "ws", **body})
        if body.get("session_id") not in self.valid_sessions:
            await socket.send_json(INVALID_SESSION)
            await socket.close()
            return socket
        self.started.set()
        generation = self._next()
        try:
            await self._play(socket, generation)
        except (asyncio.CancelledError, ConnectionResetError):
            self._client_left()
            raise
        await socket.close()
        return socket

    async def _play(self, socket: web.WebSocketResponse, generation: Generation) -> None:
        if generation.raw is not None:
            await socket.send_str(generation.raw)
            return
        await socket.send_json(
            {
                "status": {"waiting_gens": 1, "loading_models": 0, "waiting_backends": 0, "live_gens": 1},
                "backend_status": {"status": "running", "class": "", "message": "", "any_loading": False},
                "supported_features": [],
            }
        )
        for fraction in generation.progress:
            if generation.step_delay:
                await asyncio.sleep(generation.step_delay)
            if socket.closed:
                self._client_left()
                return
            await socket.send_json(
                {"gen_progress": {"batch_index": "0", "overall_percent": fraction, "current_percent": 0.5}}
            )
        if generation.hang:
            # Like SwarmUI while a step runs: silent, but it notices the socket closing.
            message = await socket.receive()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                self._client_left()
            return
        if generation.error is not None:
            await socket.send_json({"error": generation.error})
            return
        if generation.close_without_image:
            return
        await socket.send_json(
            {"image": {"image": self._image_ref(generation), "batch_index": "0", "metadata": "{}"}}
        )

    async def _generate_http(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.history.append({"route": "http", **body})
        if body.get("session_id") not in self.valid_sessions:
            return web.json_response(INVALID_SESSION, status=401)
        self.started.set()
        generation = self._next()
        try:
            if generation.step_delay:
                await asyncio.sleep(generation.step_delay * len(generation.progress))
            if generation.hang:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self._client_left()
            raise
        if generation.raw is not None:
            return web.Response(status=generation.status, text=generation.raw)
        if generation.status != 200:
            return web.json_response({"error": "backend failure"}, status=generation.status)
        if generation.error is not None:
            return web.json_response({"error": generation.error})
        return web.json_response({"images": [self._image_ref(generation)]})

    async def _interrupt(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("session_id") not in self.valid_sessions:
            return web.json_response(INVALID_SESSION, status=401)
        self.interrupts.append(body["session_id"])
        self.interrupted.set()
        return web.json_response({"success": True})

    async def _view(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.view_requests.append(path)
        if path not in self.outputs:
            return web.Response(status=404, text="no such output")
        return web.Response(body=self.outputs[path], content_type="image/png")

    def _client_left(self) -> None:
        self.disconnects += 1
        self.disconnected.set()
