"""The one reader of JSON request bodies, for the gateway and every service.

Every problem is a 4xx that says what is wrong, in the same words everywhere:

    413 payload_too_large   the body is over the app's limit (and the setting that raises it)
    400 invalid_json        the bytes are not JSON
    400 invalid_request     not an object, or a field the model refuses (`messages.0.role: …`)

The body is validated straight from its bytes (no intermediate str or dict). A large body
(vision images, documents) is validated in a worker thread: tens of MB parsed inline would
hold up every other stream on the event loop.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .errors import BadRequest
from .models import readable_validation_error
from .slow_clients import body_too_large

# Smaller bodies validate faster inline than a thread hand-off takes.
THREAD_PARSE_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """Read and validate a JSON body; with `optional`, an empty body is the model's defaults."""
    return (await read_body_and_bytes(request, model, optional=optional))[0]


async def read_body_and_bytes(
    request: web.Request, model: type[M], *, optional: bool = False
) -> tuple[M, bytes]:
    """The validated body and the bytes it was read from (the gateway passes an RLM request
    on as those bytes: a 60 MB body is not encoded a second time)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise body_too_large(request) from None
    if optional and not raw.strip():
        return model(), raw
    return await validate_json(raw, model), raw


async def validate_json(raw: bytes, model: type[M]) -> M:
    """`raw` as a `model`, or the BadRequest that says what is wrong with it."""
    try:
        if len(raw) > THREAD_PARSE_BYTES:
            return await asyncio.to_thread(model.model_validate_json, raw)
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_body(exc) from None


def invalid_body(exc: ValidationError) -> BadRequest:
    errors = exc.errors()
    if any(err["type"] == "json_invalid" for err in errors):
        return BadRequest("The body is not valid JSON.", code="invalid_json")
    if any(err["type"] == "model_type" and not err["loc"] for err in errors):
        return BadRequest("The body must be a JSON object.", code="invalid_request")
    return BadRequest(readable_validation_error(exc), code="invalid_request")
