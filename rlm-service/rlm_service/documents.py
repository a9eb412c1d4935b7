"""An RLM job's context as documents, and reading a large request without extra copies.

With attached documents, `context` in the sandbox is a list whose items are `str`s with a
`.name` (the runner's `Document`), so code can do `for doc in context: doc.name, len(doc)`.
Here that list is a `Documents`: a plain `list[str]` (every backend sends it as it sends a
list of strings) that also carries the names, which the runner receives in `init.names`.

A request body of tens of MB is read into one buffer, parsed, and the buffer dropped
before the job starts: `request.read()` would keep a second copy of the bytes for as long
as the request lives.
"""

from __future__ import annotations

from aiohttp import web
from tinychat_common.bodies import validate_json
from tinychat_common.errors import PayloadTooLarge
from tinychat_common.models import ChatRequest

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
    """The body as a ChatRequest, read in chunks; a clear 4xx for anything wrong."""
    # Parsed straight from the bytes, in a thread when large: tens of MB must not hold up
    # the other jobs' streams.
    return await validate_json(await _read_all(request, limit), ChatRequest)


async def _read_all(request: web.Request, limit: int) -> bytes:
    """The body as one bytes object. The slow-client middleware has already read it within
    the body deadline (aiohttp keeps it), so this takes that copy instead of a second one."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    body = await request.read()
    if len(body) > limit:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request is larger than the {limit}-byte limit (RLM_MAX_REQUEST_BYTES).")
