"""chat-service, as rlm-service sees it: the one outside party for every LM call.

`stream()` (root turns, streamed so the reasoning shows as it is written) uses
`POST /v1/chat/stream`; `complete()` (sub-calls) uses `POST /v1/chat/complete`. Both pass
`stop` sequences through. aiohttp failures and chat-service errors are translated here,
and only here, into rlm-service errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tinychat_common import events
from tinychat_common.internal_auth import USER_HEADER
from tinychat_common.sse import SSEDecoder

from .errors import ChatServiceFailed, ChatServiceUnreachable

Message = dict[str, str]


@dataclass
class Usage:
    """Tokens summed over every call of one job."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def add(self, usage: dict[str, Any] | None) -> None:
        self.calls += 1
        if usage:
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "llm_calls": self.calls,
        }


@dataclass
class StreamedReply:
    """Filled in while a streamed reply is read: the text so far, then how it ended."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = field(default=None)


class ChatClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        model: str | None,
        temperature: float | None,
        timeout: float,
        user: str | None = None,
    ) -> None:
        self._session = session
        # Who asked, for chat-service's CHAT_LOG: the RLM's model calls are theirs too.
        self._headers = {USER_HEADER: user} if user else None
        self._base_url = base_url
        self._model = model
        self._temperature = temperature
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=10)

    def _body(
        self, messages: list[Message], stop: list[str] | None, max_tokens: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages}
        if self._model is not None:
            body["model"] = self._model
        if self._temperature is not None:
            body["temperature"] = self._temperature
        if stop:
            body["stop"] = stop
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return body

    async def complete(
        self, messages: list[Message], *, stop: list[str] | None = None, max_tokens: int | None = None
    ) -> tuple[str, dict[str, Any] | None]:
        """The whole answer and its usage."""
        url = self._base_url + "/v1/chat/complete"
        try:
            async with self._session.post(
                url, json=self._body(messages, stop, max_tokens), timeout=self._timeout, headers=self._headers
            ) as response:
                if response.status != 200:
                    raise await _failure(response)
                data = await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise _unreachable(exc) from None
        except TimeoutError:
            raise ChatServiceFailed("The model did not answer in time.", code="upstream_timeout") from None
        except json.JSONDecodeError:
            raise ChatServiceFailed("The chat service sent an answer that is not JSON.") from None
        return str(data.get("content") or ""), data.get("usage")

    async def stream(
        self, messages: list[Message], reply: StreamedReply, *, stop: list[str] | None = None
    ) -> AsyncIterator[str]:
        """Yield the answer's pieces as they come; `reply` holds the whole text, the finish
        reason and the usage once the iterator is exhausted."""
        url = self._base_url + "/v1/chat/stream"
        try:
            async with self._session.post(
                url, json=self._body(messages, stop, None), timeout=self._timeout, headers=self._headers
            ) as response:
                if response.status != 200:
                    raise await _failure(response)
                decoder = SSEDecoder()
                async for chunk in response.content.iter_any():
                    for data in decoder.feed(chunk):
                        piece = _take_event(data, reply)
                        if piece:
                            yield piece
                    if reply.finish_reason is not None:
                        return
                for data in decoder.close():
                    piece = _take_event(data, reply)
                    if piece:
                        yield piece
        except aiohttp.ClientError as exc:
            raise _unreachable(exc) from None
        except TimeoutError:
            raise ChatServiceFailed("The model did not answer in time.", code="upstream_timeout") from None
        if reply.finish_reason is None:
            raise ChatServiceFailed(
                "The chat service's answer stopped before it was complete.", code="upstream_connection_lost"
            )


def _take_event(data: str, reply: StreamedReply) -> str:
    """Record one chat-service event on `reply`; return its text, if it carries any."""
    try:
        event = events.from_dict(json.loads(data))
    except (json.JSONDecodeError, ValueError, AttributeError):
        raise ChatServiceFailed("The chat service sent an event that is not valid.") from None
    if isinstance(event, events.Error):
        raise ChatServiceFailed(event.message, code=event.code)
    if isinstance(event, events.Done):
        reply.finish_reason = event.finish_reason
        reply.usage = event.usage
        return ""
    if isinstance(event, events.Content):
        reply.text += event.text
        return event.text
    return ""


async def _failure(response: aiohttp.ClientResponse) -> ChatServiceFailed:
    """A non-200 answer from chat-service, kept readable: its own message and code."""
    try:
        data = await response.json(content_type=None)
        return ChatServiceFailed(str(data["detail"]), code=str(data["error"]))
    except (json.JSONDecodeError, KeyError, TypeError, aiohttp.ClientError, ValueError):
        return ChatServiceFailed(f"The chat service answered HTTP {response.status}.")


def _unreachable(exc: aiohttp.ClientError) -> ChatServiceFailed | ChatServiceUnreachable:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ChatServiceUnreachable()
    return ChatServiceFailed("The connection to the chat service broke.", code="chat_service_connection_lost")
