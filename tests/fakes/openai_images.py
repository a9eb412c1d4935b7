"""A fake OpenAI Images API: `POST /v1/images/generations` and the `/files/…` its `url`
answers point to, in OpenAI's wire format.

Script it with `enqueue(ImageReply(...))` (one reply per request, in order); it records
every request body in `history` and its headers in `headers`.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .openai_upstream import openai_error
from .server import FakeServer
from .swarmui import png_bytes


@dataclass
class ImageReply:
    image: bytes = field(default_factory=png_bytes)
    as_url: bool = False
    revised_prompt: str | None = None
    delay: float = 0.0
    status: int = 200  # not 200: answer `error` (an OpenAI error body) with this status
    error: dict[str, Any] | None = None
    raw: bytes | None = None  # answer exactly these bytes (malformed JSON)
    url: str | None = None  # answer this image URL (SSRF tests); `redirect_to` answers 302 there
    redirect_to: str | None = None


class FakeOpenAIImages(FakeServer):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.history: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.file_requests: list[dict[str, str]] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self._files: dict[str, bytes] = {}
        self._redirects: dict[str, str] = {}
        self._queue: list[ImageReply] = []
        self.app.router.add_post("/v1/images/generations", self._generations)
        self.app.router.add_get("/files/{name}", self._file)

    @property
    def url(self) -> str:
        """What OPENAI_IMAGE_API_BASE should be."""
        return self.base_url + "/v1"

    def enqueue(self, *replies: ImageReply) -> None:
        self._queue.extend(replies)

    async def _generations(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.history.append(body)
        self.headers.append(dict(request.headers))
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            message = f"Incorrect API key provided: {request.headers.get('Authorization', '')[7:]}."
            return web.json_response(openai_error(message, code="invalid_api_key"), status=401)
        reply = self._queue.pop(0) if self._queue else ImageReply()
        if reply.delay:
            try:
                await asyncio.sleep(reply.delay)
            except asyncio.CancelledError:
                self.disconnects += 1
                self.disconnected.set()
                raise
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, content_type="application/json")
        if reply.status != 200:
            error = reply.error or openai_error("fake failure", "server_error")
            return web.json_response(error, status=reply.status)
        item: dict[str, Any] = {}
        if reply.redirect_to is not None:
            name = uuid.uuid4().hex + ".png"
            self._redirects[name] = reply.redirect_to
            item["url"] = f"{self.base_url}/files/{name}"
        elif reply.url is not None:
            item["url"] = reply.url
        elif reply.as_url:
            name = uuid.uuid4().hex + ".png"
            self._files[name] = reply.image
            item["url"] = f"{self.base_url}/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(reply.image).decode("ascii")
        if reply.revised_prompt is not None:
            item["revised_prompt"] = reply.revised_prompt
        return web.json_response({"created": int(time.time()), "data": [item]})

    async def _file(self, request: web.Request) -> web.Response:
        self.file_requests.append(dict(request.headers))
        name = request.match_info["name"]
        if name in self._redirects:
            raise web.HTTPFound(self._redirects[name])
        if name not in self._files:
            return web.Response(status=404)
        return web.Response(body=self._files[name], content_type="image/png")
