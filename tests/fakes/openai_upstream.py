"""A fake OpenAI-compatible chat API (`/v1/chat/completions`, `/v1/models`).

Script it with `enqueue(Reply(...))` (one reply per request, in order) or
`respond_with(fn)` (a function of the request body); it records every request in
`history` and every client that hung up mid-stream in `disconnects`.

Reasoning models: `Reply(reasoning=[...], dialect=...)` streams the reasoning deltas before
the answer, shaped as each server family really sends them (see `REASONING_DIALECTS`); a
`<think>` block inline is just `chunks` that contain the tags.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .server import FakeServer


@dataclass
class Reply:
    text: str = "Hello from the fake model."
    chunks: list[str] | None = None  # the deltas; default: the text split into words
    finish_reason: str = "stop"
    usage: dict[str, int] | None = field(
        default_factory=lambda: {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    )
    chunk_delay: float = 0.0
    first_byte_delay: float = 0.0
    status: int = 200  # not 200: answer `error_body` with this status instead
    error_body: Any = None
    raw: list[bytes] | None = None  # write exactly these bytes (parser tests)
    stall_after: int | None = None  # after this many chunks, send nothing more, ever
    reset_after: int | None = None  # after this many chunks, drop the connection
    error_event: dict[str, Any] | None = None  # sent as an SSE event after the chunks
    reasoning: list[str] | None = None  # reasoning deltas, streamed before the answer's
    dialect: str = "deepseek"  # how the reasoning travels: a key of REASONING_DIALECTS

    def deltas(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _deepseek(text: str | None, reasoning: str | None) -> dict[str, Any]:
    # DeepSeek's API (and vLLM's reasoning parsers): both keys on every delta, the unused one null.
    return {"content": text, "reasoning_content": reasoning}


def _llamacpp(text: str | None, reasoning: str | None) -> dict[str, Any]:
    # llama.cpp's server (--reasoning-format deepseek): only the key that has text.
    return {"reasoning_content": reasoning} if reasoning is not None else {"content": text}


def _openrouter(text: str | None, reasoning: str | None) -> dict[str, Any]:
    # OpenRouter: `reasoning`, repeated in `reasoning_details`; content is "" meanwhile.
    if reasoning is None:
        return {"role": "assistant", "content": text}
    details = [{"type": "reasoning.text", "text": reasoning, "format": "unknown", "index": 0}]
    return {"role": "assistant", "content": "", "reasoning": reasoning, "reasoning_details": details}


def _ollama(text: str | None, reasoning: str | None) -> dict[str, Any]:
    # Ollama's OpenAI-compatible API: `reasoning` next to an empty content.
    if reasoning is None:
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": "", "reasoning": reasoning}


REASONING_DIALECTS: dict[str, Callable[[str | None, str | None], dict[str, Any]]] = {
    "deepseek": _deepseek,
    "llamacpp": _llamacpp,
    "openrouter": _openrouter,
    "ollama": _ollama,
}


def openai_error(
    message: str, kind: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


class FakeOpenAI(FakeServer):
    def __init__(self, models: list[str] | None = None, api_key: str | None = None) -> None:
        super().__init__()
        self.models = models or ["fake-model", "fake-vision"]
        self.api_key = api_key
        self.history: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.peers: list[tuple[str, int]] = []  # client address per request: shows connection reuse
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self.model_list_calls = 0
        self._queue: list[Reply] = []
        self._responder: Callable[[dict[str, Any]], Reply] | None = None
        self.app.router.add_post("/v1/chat/completions", self._completions)
        self.app.router.add_get("/v1/models", self._models)

    @property
    def url(self) -> str:
        """What OPENAI_API_URL should be."""
        return self.base_url + "/v1"

    def enqueue(self, *replies: Reply) -> None:
        self._queue.extend(replies)

    def respond_with(self, responder: Callable[[dict[str, Any]], Reply]) -> None:
        self._responder = responder

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._queue:
            return self._queue.pop(0)
        if self._responder is not None:
            return self._responder(body)
        return Reply()

    def _unauthorized(self, request: web.Request) -> bool:
        return self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}"

    async def _models(self, request: web.Request) -> web.Response:
        self.model_list_calls += 1
        if self._unauthorized(request):
            return web.json_response(openai_error("Incorrect API key provided."), status=401)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.history.append(body)
        self.headers.append(dict(request.headers))
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else ("", 0))
        if self._unauthorized(request):
            return web.json_response(
                openai_error("Incorrect API key provided.", code="invalid_api_key"), status=401
            )
        reply = self._next_reply(body)
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.status != 200:
            return web.json_response(reply.error_body or openai_error("fake failure"), status=reply.status)
        if not body.get("stream"):
            return web.json_response(self._whole(body, reply))
        try:
            return await self._stream(request, body, reply)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            self.disconnected.set()
            raise

    def _whole(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": self._whole_message(reply),
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": reply.usage,
        }

    @staticmethod
    def _whole_message(reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.deltas())}
        if reply.reasoning:
            field = "reasoning" if reply.dialect in ("openrouter", "ollama") else "reasoning_content"
            message[field] = "".join(reply.reasoning)
        return message

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if reply.raw is not None:
            for piece in reply.raw:
                await response.write(piece)
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
            await response.write_eof()
            return response
        model = body.get("model")
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
        first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        await response.write(_frame(first))
        shape = REASONING_DIALECTS[reply.dialect]
        for thought in reply.reasoning or []:
            chunk = {**base, "choices": [{"index": 0, "delta": shape(None, thought), "finish_reason": None}]}
            await response.write(_frame(chunk))
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
        for n, delta in enumerate(reply.deltas()):
            if reply.stall_after is not None and n >= reply.stall_after:
                await asyncio.sleep(3600)
            if reply.reset_after is not None and n >= reply.reset_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            content = shape(delta, None) if reply.reasoning else {"content": delta}
            chunk = {**base, "choices": [{"index": 0, "delta": content, "finish_reason": None}]}
            await response.write(_frame(chunk))
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
        if reply.error_event is not None:
            await response.write(_frame(reply.error_event))
        else:
            last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]}
            await response.write(_frame(last))
            if (body.get("stream_options") or {}).get("include_usage") and reply.usage:
                await response.write(_frame({**base, "choices": [], "usage": reply.usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"
