"""An OpenAI-compatible server that streams one canned answer: what a new user sees first."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web
from tinychat_common.errors import BadRequest
from tinychat_common.service import base_app

from .answer import DEMO_MODEL, apply_limits, compose_answer, count_tokens, split_into_pieces
from .config import DemoSettings

SETTINGS = web.AppKey("demo_settings", DemoSettings)


def create_app(settings: DemoSettings) -> web.Application:
    app = base_app(settings, "demo-model")
    app[SETTINGS] = settings
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    return app


async def list_models(request: web.Request) -> web.Response:
    model = {"id": DEMO_MODEL, "object": "model", "created": 0, "owned_by": "tinychat"}
    return web.json_response({"object": "list", "data": [model]})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_request(request)
    messages = body["messages"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    pieces, finish_reason = apply_limits(
        split_into_pieces(compose_answer(messages)), stops, body.get("max_tokens")
    )
    usage = {
        "prompt_tokens": count_tokens(messages),
        "completion_tokens": len(pieces),
        "total_tokens": count_tokens(messages) + len(pieces),
    }
    model = str(body.get("model") or DEMO_MODEL)
    if not body.get("stream"):
        return web.json_response(whole_answer(model, "".join(pieces), finish_reason, usage))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    delay = request.app[SETTINGS].demo_chunk_delay_ms / 1000
    return await stream_answer(request, model, pieces, finish_reason, usage if include_usage else None, delay)


async def read_request(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("`messages` must be a non-empty list.")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest("`max_tokens` must be a positive integer.")
    return body


def whole_answer(model: str, text: str, finish_reason: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-demo-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


async def stream_answer(
    request: web.Request,
    model: str,
    pieces: list[str],
    finish_reason: str,
    usage: dict[str, int] | None,
    delay: float,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    base = {
        "id": f"chatcmpl-demo-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    await response.write(chunk(base, {"role": "assistant", "content": ""}))
    for piece in pieces:
        await response.write(chunk(base, {"content": piece}))
        if delay:
            await asyncio.sleep(delay)
    await response.write(chunk(base, {}, finish_reason))
    if usage is not None:
        await response.write(frame({**base, "choices": [], "usage": usage}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def chunk(base: dict[str, Any], delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    return frame({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"
