"""The app-wide objects of chat-service, each under a typed key (no globals)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from tinychat_common.chatlog import ChatLog

from .chat import ChatService
from .config import ChatSettings

SETTINGS = web.AppKey("chat_settings", ChatSettings)
SESSION = web.AppKey("chat_upstream_session", aiohttp.ClientSession)
CHAT_LOG = web.AppKey("chat_log", ChatLog)
CHAT = web.AppKey("chat", ChatService)
