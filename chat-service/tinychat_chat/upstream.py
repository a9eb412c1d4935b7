"""The one module that talks to the OpenAI-compatible API.

Every failure of the API or of the way to it is translated here, and only here, into the
errors of `errors.py`, with messages that never carry the API key, the URL's credentials
or a stack trace. Closing a stream (the client went away) closes the upstream response
at once, so the provider stops generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tinychat_common.deadline import ReadDeadline
from tinychat_common.events import Reasoning
from tinychat_common.redact import Scrubber, url_credentials, without_credentials

from .config import ChatSettings
from .errors import (
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamConnectionLost,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamParameterRefused,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamStalled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .openai_stream import OpenAIStreamParser, error_message

log = logging.getLogger(__name__)

_BODY_END_WAIT_SECONDS = 1.0


@dataclass
class StreamEnd:
    """How an upstream stream ended: the last thing `stream_chat` yields."""

    finish_reason: str
    usage: dict[str, Any] | None = None


@dataclass
class Completion:
    content: str
    finish_reason: str
    usage: dict[str, Any] | None = None
    reasoning: str = ""


def session_timeout(settings: ChatSettings) -> aiohttp.ClientTimeout:
    # No total limit: an answer may stream for minutes. First byte and idleness are
    # watched per request (see tinychat_common.deadline), connecting here.
    return aiohttp.ClientTimeout(total=None, sock_connect=settings.upstream_connect_timeout)


class UpstreamClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: ChatSettings,
        *,
        url: str | None = None,
        key: str | None = None,
        key_hint: str = "OPENAI_API_KEY",
    ) -> None:
        """The OPENAI_API_URL endpoint, or (url, key) of one of CHAT_ENDPOINTS'."""
        self._session = session
        self._settings = settings
        url = settings.openai_api_url if url is None else url
        key = settings.openai_api_key.get_secret_value() if key is None else key
        self._key_hint = key_hint
        # Credentials in the URL (user:password@) become Basic auth, unless an API key is set.
        self._base = without_credentials(url)
        self._where = urlsplit(url).hostname or "the model API"
        user, password = url_credentials(url)
        if key:
            self._authorization = f"Bearer {key}"
        elif user or password:
            self._authorization = aiohttp.BasicAuth(user, password).encode()
        else:
            self._authorization = ""
        self._scrub = Scrubber(s for s in (key, user, password) if len(s) >= 4)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream, application/json"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        return headers

    def scrub(self, text: str) -> str:
        """Text from the upstream with anything secret, or shaped like a key, blanked out."""
        return self._scrub(text)

    async def _json_answer(
        self,
        request: AbstractAsyncContextManager[aiohttp.ClientResponse],
        *,
        model: str | None,
        doing: str,
        what: str,
    ) -> object:
        """The JSON body of one non-streaming call, its failures translated in one place;
        `doing` and `what` name the call in the errors ("did not answer", "answer is not JSON")."""
        timeout = self._settings.upstream_first_byte_timeout
        try:
            async with asyncio.timeout(timeout), request as response:
                if response.status != 200:
                    raise await self._status_error(response, model=model)
                return await response.json(content_type=None)
        except aiohttp.ClientError as exc:  # before TimeoutError: aiohttp's timeouts are both
            raise self._transport_error(exc, started=False) from None
        except TimeoutError:
            raise UpstreamTimeout(f"The model API did not {doing} within {timeout:g} s.") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UpstreamBadResponse(f"The model API's {what} is not JSON.") from None

    async def list_models(self) -> list[str]:
        """The model ids the API offers (GET /models)."""
        request = self._session.get(f"{self._base}/models", headers=self._headers())
        body = await self._json_answer(request, model=None, doing="list its models", what="model list")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise UpstreamBadResponse("The model API's model list has no `data` array.")
        return [str(item["id"]) for item in data if isinstance(item, dict) and item.get("id")]

    async def stream_chat(self, payload: dict[str, Any]) -> AsyncIterator[str | Reasoning | StreamEnd]:
        """Yield the answer's text, one string per read from the API (its reasoning as
        Reasoning events, before the text of the same read), then one StreamEnd."""
        model = str(payload.get("model"))
        response = await self._open_stream(payload)
        parser = OpenAIStreamParser(self.scrub)
        deadline = ReadDeadline(
            response.close, self._settings.upstream_first_byte_timeout, self._settings.upstream_idle_timeout
        )
        try:
            async for text in self._read_stream(response, parser, deadline):
                yield text
            if not parser.complete:
                raise UpstreamConnectionLost(
                    f"The model API ({model}) closed the stream before the answer was complete."
                )
            yield StreamEnd(parser.finish_reason or "stop", parser.usage)
        finally:
            deadline.cancel()
            await finish_response(response, answered=parser.done)

    async def complete(self, payload: dict[str, Any]) -> Completion:
        """The whole answer at once; streamed underneath so the same timeouts apply."""
        parts: list[str] = []
        thoughts: list[str] = []
        end = StreamEnd("stop")
        async for item in self.stream_chat(payload):
            if isinstance(item, StreamEnd):
                end = item
            elif isinstance(item, Reasoning):
                thoughts.append(item.text)
            else:
                parts.append(item)
        return Completion("".join(parts), end.finish_reason, end.usage, "".join(thoughts))

    async def complete_once(self, payload: dict[str, Any]) -> str:
        """One non-streaming completion (`stream: false`): the answer's text."""
        request = self._session.post(f"{self._base}/chat/completions", json=payload, headers=self._headers())
        model = str(payload.get("model"))
        body = await self._json_answer(request, model=model, doing="answer", what="answer")
        choices = body.get("choices") if isinstance(body, dict) else None
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise UpstreamBadResponse("The model API's answer has no message content.")
        return content

    async def _open_stream(self, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        timeout = self._settings.upstream_first_byte_timeout
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(timeout):
                response = await self._session.post(
                    f"{self._base}/chat/completions", json=payload, headers=self._headers()
                )
                if response.status != 200:
                    raise await self._status_error(response, model=str(payload.get("model")))
                return response
        except aiohttp.ClientError as exc:  # before TimeoutError: aiohttp's timeouts are both
            raise self._transport_error(exc, started=False) from None
        except TimeoutError:
            if response is not None:
                response.close()
            raise UpstreamTimeout(f"The model API did not start answering within {timeout:g} s.") from None
        except BaseException:
            if response is not None:
                response.close()
            raise

    async def _read_stream(
        self, response: aiohttp.ClientResponse, parser: OpenAIStreamParser, deadline: ReadDeadline
    ) -> AsyncIterator[str | Reasoning]:
        # readany() directly, not iter_any(): one call less per read on the hot path.
        content = response.content
        while not parser.done:
            deadline.start_waiting()
            try:
                data = await content.readany()
            except (aiohttp.ClientError, ConnectionError) as exc:
                if deadline.expired:
                    raise deadline_error(deadline) from None
                raise self._transport_error(exc, started=True) from None
            if not data:
                break  # the end of the body
            deadline.got_data()
            text = parser.feed(data)
            thought = parser.take_reasoning()
            if thought:
                yield Reasoning(thought)
            if text:
                yield text
            if parser.failure is not None:
                raise parser.failure
        if deadline.expired:
            raise deadline_error(deadline)
        tail = parser.close()
        thought = parser.take_reasoning()
        if thought:
            yield Reasoning(thought)
        if tail:
            yield tail
        parser.raise_failure()

    async def _status_error(self, response: aiohttp.ClientResponse, model: str | None) -> UpstreamError:
        try:
            raw = await response.read()
            detail = error_message(json.loads(raw))
        except (aiohttp.ClientError, json.JSONDecodeError, UnicodeDecodeError):
            detail = ""
        finally:
            response.close()
        detail = self.scrub(detail)
        status = response.status
        log.warning("model API answered HTTP %s: %s", status, detail or "(no detail)")
        suffix = f": {detail}" if detail else "."
        if status in (401, 403):
            # The provider's text may quote part of the key: say what to fix instead.
            return UpstreamAuthFailed(
                f"The model API refused the request (HTTP {status}). Check {self._key_hint}."
            )
        if status == 404:
            what = f"the model '{model}'" if model else "this request"
            return UpstreamModelNotFound(
                f"The model API has no {what} (HTTP 404){suffix} Check the model name and OPENAI_API_URL."
            )
        refused = refused_parameter(detail) if status == 400 else None
        if refused is not None:
            return UpstreamParameterRefused(refused, model or "", detail)
        if status == 429:
            return UpstreamRateLimited(f"The model API is rate limiting requests (HTTP 429){suffix}")
        if 400 <= status < 500:
            return UpstreamRejected(f"The model API rejected the request (HTTP {status}){suffix}")
        return UpstreamUnavailable(f"The model API failed (HTTP {status}){suffix}")

    def _transport_error(self, exc: BaseException, *, started: bool) -> UpstreamError | UpstreamTimeout:
        log.warning("model API transport error: %s", self.scrub(f"{type(exc).__name__}: {exc}"))
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            seconds = self._settings.upstream_connect_timeout
            return UpstreamTimeout(
                f"Could not connect to the model API at {self._where} within {seconds:g} s."
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            return UpstreamUnavailable(f"Could not connect to the model API at {self._where}: {reason}.")
        if started or isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return UpstreamConnectionLost()
        return UpstreamUnavailable(f"The request to the model API at {self._where} failed.")


async def finish_response(response: aiohttp.ClientResponse, *, answered: bool) -> None:
    """Keep the connection for the next request after a whole answer; otherwise close it,
    which tells the API to stop generating (the client went away, or something failed)."""
    if answered and not response.content.at_eof():
        # After [DONE] the body's end is normally already on its way.
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with asyncio.timeout(_BODY_END_WAIT_SECONDS):
                while await response.content.readany():
                    pass
    if answered and response.content.at_eof():
        response.release()
    else:
        response.close()


def deadline_error(deadline: ReadDeadline) -> UpstreamTimeout:
    if not deadline.got_first_byte:
        return UpstreamTimeout(f"The model API did not start answering within {deadline.first_byte:g} s.")
    return UpstreamStalled(f"The model API sent nothing for {deadline.idle:g} s in the middle of the answer.")


_REFUSALS = (
    # OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. Use
    # 'max_completion_tokens' instead." / "Unsupported value: 'temperature' does not support
    # 0.7 with this model. Only the default (1) value is supported."
    ("max_tokens", re.compile(r"max_tokens.{0,80}(not supported|unsupported)|max_completion_tokens", re.I)),
    (
        "temperature",
        re.compile(
            r"temperature.{0,80}(not supported|unsupported|does not support|only the default)"
            r"|unsupported (parameter|value).{0,20}temperature",
            re.I,
        ),
    ),
)


def refused_parameter(detail: str) -> str | None:
    """Which request parameter a 400's message says the model refuses, if it says so."""
    for parameter, pattern in _REFUSALS:
        if pattern.search(detail):
            return parameter
    return None
