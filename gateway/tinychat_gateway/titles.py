"""POST /api/chat/title: a short title for a conversation, asked of chat-service (which
makes one cheap non-streaming call to the model, where its endpoint allows titles)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from tinychat_common.bodies import read_body
from tinychat_common.errors import TinyChatError
from tinychat_common.models import ChatRequest

from .app_keys import GATEWAY, SESSION
from .errors import BadDownstreamAnswer, ServiceUnreachable
from .handlers import forwarded_body
from .models import TitleResponse

TITLE_TIMEOUT = aiohttp.ClientTimeout(total=60)


async def chat_title(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    chat = await read_body(request, ChatRequest)
    url = gateway.settings.chat_service_url + "/v1/chat/title"
    headers = {"Content-Type": "application/json"}
    try:
        async with request.app[SESSION].post(
            url, data=forwarded_body(chat), headers=headers, timeout=TITLE_TIMEOUT
        ) as answer:
            status = answer.status
            data = await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise ServiceUnreachable("chat") from None
    if status == 200 and isinstance(data, dict) and isinstance(data.get("title"), str):
        return web.json_response(TitleResponse(title=data["title"]).model_dump())
    if isinstance(data, dict) and isinstance(data.get("error"), str) and isinstance(data.get("detail"), str):
        # chat-service's own error (titles off, unknown model, the model failed), as it said it.
        error = TinyChatError(data["detail"], code=data["error"])
        error.status = status if 400 <= status < 600 else 502
        raise error
    raise BadDownstreamAnswer("chat", status)
