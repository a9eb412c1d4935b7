"""An RLM job's context as documents, and reading a large request without extra copies.

With attached documents, `context` in the sandbox is a list whose items are `str`s with a
`.name` (the runner's `Document`), so code can do `for doc in context: doc.name, len(doc)`.
Here that list is a `Documents`: a plain `list[str]` (every backend sends it as it sends a
list of strings) that also carries the names, which the runner receives in `init.names`.

A request body of tens of MB is never held whole: it is read in chunks, its long strings
decoded as they arrive (json_strings.py), and only the small rest validated at once.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from tinychat_common.bodies import validate_json
from tinychat_common.errors import BadRequest, PayloadTooLarge
from tinychat_common.models import ChatRequest
from tinychat_common.slow_clients import BODY_TIMEOUT, RequestTimeout

from .json_strings import InvalidJson, JsonStringSplitter

READ_CHUNK = 1 << 20
CONVERSATION_NAME = "conversation"


class Documents(list[str]):
    """Texts of the job's documents, in order, with their names alongside."""

    def __init__(self, texts: list[str], names: list[str]) -> None:
        super().__init__(texts)
        if len(names) != len(texts):
            raise ValueError("one name per document")
        self.names = names


def context_chars(context: str | list[str]) -> int:
    return len(context) if isinstance(context, str) else sum(len(item) for item in context)


async def read_chat_request(request: web.Request, limit: int) -> ChatRequest:
    """The body as a ChatRequest, read in chunks; a clear 4xx for anything wrong.

    Long strings (the documents) are decoded as their chunks arrive and the rest validated
    as a small skeleton (json_strings.py): the body itself is never held whole."""
    splitter = JsonStringSplitter()
    await _read_into(request, limit, splitter)
    try:
        skeleton, strings = splitter.finish()
    except InvalidJson:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    chat = await validate_json(skeleton, ChatRequest)
    _put_back_long_strings(chat, splitter, strings)
    return chat


async def _read_into(request: web.Request, limit: int, splitter: JsonStringSplitter) -> None:
    """Feed the body to `splitter` within the body deadline (this route reads its own body:
    see tinychat_common.slow_clients.reads_own_body) and the size limit."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    timeout = request.app.get(BODY_TIMEOUT, 0.0)
    received = 0
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
            async for chunk in request.content.iter_chunked(READ_CHUNK):
                received += len(chunk)
                if received > limit:
                    raise _too_large(limit)
                splitter.feed(chunk)
    except TimeoutError:
        raise RequestTimeout(f"The request body took over {timeout:g} s to arrive.") from None


def _put_back_long_strings(chat: ChatRequest, splitter: JsonStringSplitter, strings: list[str]) -> None:
    """Each placeholder back to its text. Only free-text fields may hold a long string; a
    placeholder anywhere else (a file name) is a value too long for that field."""
    if not strings:
        return
    where = {splitter.placeholder(index): index for index in range(len(strings))}

    def real(value: str | None) -> str | None:
        index = where.get(value) if value is not None else None
        return value if index is None else strings[index]

    for message in chat.messages:
        message.content = real(message.content) or ""
        message.image = real(message.image)
    for number, document in enumerate(chat.documents or []):
        if document.name in where:
            raise BadRequest(
                f"documents.{number}.name: String should have at most 255 characters", code="invalid_request"
            )
        document.text = real(document.text) or ""
    chat.model = real(chat.model)
    chat.rlm_passcode = real(chat.rlm_passcode)
    strings.clear()


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request is larger than the {limit}-byte limit (RLM_MAX_REQUEST_BYTES).")
