"""HTTP handlers: parse, prepare (errors here are JSON 4xx), then answer."""

from __future__ import annotations

from aiohttp import web
from tinychat_common.bodies import read_body
from tinychat_common.internal_auth import USER_HEADER
from tinychat_common.streaming import serve_events

from .app_keys import CHAT, SETTINGS
from .conversation import InternalChatRequest


async def chat_stream(request: web.Request) -> web.StreamResponse:
    chat = request.app[CHAT]
    body = await read_body(request, InternalChatRequest)
    prepared = await chat.prepare(body)
    # Who asked, as the gateway knows it (AUTH_MODE); only callers with the token get here.
    prepared.user = request.headers.get(USER_HEADER)
    return await serve_events(request, chat.stream(prepared))


async def chat_complete(request: web.Request) -> web.Response:
    chat = request.app[CHAT]
    body = await read_body(request, InternalChatRequest)
    prepared = await chat.prepare(body)
    prepared.user = request.headers.get(USER_HEADER)
    completion = await chat.complete(prepared)
    return web.json_response(
        {
            "content": completion.content,
            "reasoning": completion.reasoning,
            "finish_reason": completion.finish_reason,
            "usage": completion.usage,
            "model": prepared.model,
        }
    )


async def chat_title(request: web.Request) -> web.Response:
    body = await read_body(request, InternalChatRequest)
    return web.json_response({"title": await request.app[CHAT].title(body)})


async def list_models(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    endpoints = request.app[CHAT].endpoints
    choice, groups = await endpoints.snapshot()
    return web.json_response(
        {
            "models": choice.models,
            "model_groups": groups,
            "default_model": choice.default_model,
            "default_temperature": settings.default_temperature,
            "max_message_length": settings.max_message_length,
            "max_conversation_history": settings.max_conversation_history,
            "max_image_size_mb": settings.max_image_size_mb,
        }
    )
