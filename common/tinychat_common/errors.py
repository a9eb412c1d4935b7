"""The errors every service can raise, and their two outside forms.

    TinyChatError                  500 internal_error
    ├── BadRequest                 400 bad_request
    │   ├── UnknownModel           400 unknown_model
    │   └── MessageTooLong         413 message_too_long
    ├── PayloadTooLarge            413 payload_too_large
    ├── Unauthorized               401 unauthorized
    ├── RateLimited                429 rate_limited
    ├── Busy                       429 busy               (+ Retry-After: 5)
    ├── UpstreamError              502 upstream_error
    ├── UpstreamTimeout            504 upstream_timeout
    └── ServiceUnavailable         503 service_unavailable
        └── ShuttingDown           503 shutting_down

Before a stream starts an error is a JSON body `{"error": code, "detail": message}` with
the class's status; after it starts it is one `{"error": message, "code": code}` event
followed by `done`. Services add their own subclasses; the forms stay the same. An error
with a `retry_after` (seconds) also sends it as a `Retry-After` header.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .events import Error

log = logging.getLogger(__name__)

# What a busy service tells the client to wait: long enough for a short job to end.
BUSY_RETRY_AFTER_SECONDS = 5


class TinyChatError(Exception):
    status: int = 500
    code: str = "internal_error"
    default_message: str = "Something went wrong inside TinyChat."
    # Seconds the client should wait before trying again, sent as Retry-After when set.
    retry_after: int | None = None

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.message}

    def to_event(self) -> Error:
        return Error(self.message, self.code)

    def to_response(self, headers: dict[str, str] | None = None) -> web.Response:
        if self.retry_after is not None:
            headers = {**(headers or {}), "Retry-After": str(self.retry_after)}
        return json_error(self.status, self.code, self.message, headers=headers)


class BadRequest(TinyChatError):
    status = 400
    code = "bad_request"
    default_message = "The request is not valid."


class UnknownModel(BadRequest):
    code = "unknown_model"


class MessageTooLong(BadRequest):
    status = 413
    code = "message_too_long"


class PayloadTooLarge(TinyChatError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class Unauthorized(TinyChatError):
    status = 401
    code = "unauthorized"
    default_message = "A valid passcode is required."


class RateLimited(TinyChatError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; try again later."


class Busy(TinyChatError):
    """Every concurrency slot of a kind is taken (see limiter.slot): the same answer from
    every service, a 429 with the seconds to wait."""

    status = 429
    code = "busy"
    default_message = "The server is busy; try again in a moment."
    retry_after = BUSY_RETRY_AFTER_SECONDS


class UpstreamError(TinyChatError):
    status = 502
    code = "upstream_error"
    default_message = "The upstream service failed."


class UpstreamTimeout(TinyChatError):
    status = 504
    code = "upstream_timeout"
    default_message = "The upstream service did not answer in time."


class ServiceUnavailable(TinyChatError):
    status = 503
    code = "service_unavailable"
    default_message = "The service is not available right now."


class ShuttingDown(ServiceUnavailable):
    """The replica is draining: a new request is refused, a stream still open at the end
    of the grace period is cut with this as its error event."""

    code = "shutting_down"
    default_message = "The server is shutting down; try again."


def json_error(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": code, "detail": detail}, status=status, headers=headers, dumps=json.dumps
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "service_unavailable",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error a handler lets out becomes the JSON form; a stream already started
    handles its own errors (see streaming.serve_events)."""
    try:
        return await handler(request)
    except TinyChatError as exc:
        return exc.to_response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return json_error(exc.status, code, detail, headers=_kept_headers(exc))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal_error", TinyChatError.default_message)


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    kept = {}
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            kept[name] = exc.headers[name]
    return kept
