"""The gateway's request handlers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from tinychat_common.bodies import read_body, read_body_and_bytes
from tinychat_common.errors import BadRequest, MessageTooLong, PayloadTooLarge
from tinychat_common.events import Content
from tinychat_common.models import ChatRequest
from tinychat_common.streaming import serve_events

from .app_keys import GATEWAY, SERVICE_INFO, SESSION
from .auth import IDENTITY, USER_HEADER_TO_SERVICES, request_identity
from .downstream import probe_ready, relay
from .errors import TooManyRequests
from .models import (
    ChatConfig,
    ConfigResponse,
    HealthResponse,
    ImageConfig,
    ModelGroup,
    RlmConfig,
    RlmValidateRequest,
    RlmValidateResponse,
    ServiceHealth,
)
from .routing import IMAGE_USAGE, STREAM_PATHS, choose_route
from .state import Gateway
from .static import APP_CACHE_CONTROL, VENDOR_CACHE_CONTROL, app_file, file_response, vendor_file

PASSCODE_HEADER = "X-RLM-Passcode"
HEALTH_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)
T = TypeVar("T")


def forwarded_body(chat: ChatRequest) -> bytes:
    """The validated request as the services get it: what the client set, minus the passcode."""
    return chat.model_dump_json(exclude_unset=True, exclude={"rlm_passcode"}).encode()


def check_body_size(gateway: Gateway, chat: ChatRequest, service: str, size: int) -> None:
    """RLM requests may be as large as RLM_MAX_REQUEST_BYTES (documents as the job's
    context); every other request stays within MAX_REQUEST_BYTES."""
    settings = gateway.settings
    if service != "rlm" and size > settings.max_request_bytes:
        raise PayloadTooLarge(
            f"The request body is larger than the {settings.max_request_bytes}-byte limit; "
            "large documents can be attached with RLM on."
        )
    if chat.documents is not None and service != "rlm":
        raise BadRequest(
            "Attached documents travel as `documents` only with `rlm: true`; without RLM, "
            "put their text in the message.",
            code="documents_need_rlm",
        )


def enforce_rate_limit(request: web.Request, gateway: Gateway, kind: str) -> None:
    window = gateway.rate_limits.get(kind)
    if window is None:
        return
    wait = window.hit(request_identity(request, gateway.settings))
    if wait > 0:
        gateway.metrics.rate_limited.labels(kind).inc()
        raise TooManyRequests(kind, window.limit, retry_after=wait)


def check_passcode(request: web.Request, gateway: Gateway, from_body: str | None) -> None:
    given = request.headers.get(PASSCODE_HEADER, from_body)
    try:
        gateway.passcode.check(request_identity(request, gateway.settings), given)
    except Exception:
        gateway.metrics.passcode_failures.inc()
        raise


async def _usage_text() -> AsyncIterator[Content]:
    yield Content(IMAGE_USAGE)


async def chat_stream(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    chat, raw = await read_body_and_bytes(request, ChatRequest)
    route = choose_route(chat)
    check_body_size(gateway, chat, route.service, len(raw))
    if route.service == "usage":
        return await serve_events(request, _usage_text())
    if route.service == "image":
        limit = gateway.settings.max_message_length
        if len(route.image_prompt) > limit:
            raise MessageTooLong(f"The image prompt is longer than the {limit}-character limit.")
        body = json.dumps({"prompt": route.image_prompt}).encode()
    else:
        if route.service == "rlm":
            check_passcode(request, gateway, chat.rlm_passcode)
        # Validated strictly (no unknown keys), so the client's bytes say exactly what the
        # model says; re-encoded only to drop a passcode sent in the body.
        as_sent = route.service == "rlm" and "rlm_passcode" not in chat.model_fields_set
        body = raw if as_sent else forwarded_body(chat)
    enforce_rate_limit(request, gateway, route.service)
    del chat  # the parsed documents are not needed while the answer is relayed
    url = gateway.service_url(route.service) + STREAM_PATHS[route.service]
    identity = request.get(IDENTITY)
    user = {USER_HEADER_TO_SERVICES: identity} if identity else None
    return await relay(request, request.app[SESSION], gateway.metrics, route.service, url, body, user)


async def rlm_validate(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = await read_body(request, RlmValidateRequest, optional=True)
    check_passcode(request, gateway, body.passcode)
    answer = RlmValidateResponse(valid=True, passcode_required=gateway.passcode.required)
    return web.json_response(answer.model_dump())


async def config(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    settings = gateway.settings
    info = request.app[SERVICE_INFO]
    chat, image, rlm = await asyncio.gather(
        info.get(settings.chat_service_url + "/v1/models"),
        info.get(settings.image_service_url + "/v1/images/config"),
        info.get(settings.rlm_service_url + "/v1/rlm/config"),
    )
    chat = chat or {}
    image = image or {}
    rlm = rlm or {}
    answer = ConfigResponse(
        version=gateway.version,
        models=_strings(chat.get("models")),
        model_groups=_model_groups(chat.get("model_groups")),
        default_model=_typed(chat.get("default_model"), str),
        default_temperature=_typed(chat.get("default_temperature"), float),
        max_message_length=min(
            settings.max_message_length,
            _typed(chat.get("max_message_length"), int) or settings.max_message_length,
        ),
        max_conversation_history=_typed(chat.get("max_conversation_history"), int),
        max_request_bytes=settings.max_request_bytes,
        rlm_max_request_bytes=settings.rlm_max_request_bytes,
        chat=ChatConfig(enabled=bool(chat.get("models"))),
        image=ImageConfig(enabled=image.get("enabled") is True, provider=_typed(image.get("provider"), str)),
        rlm=RlmConfig(
            enabled=rlm.get("enabled") is True,
            passcode_required=gateway.passcode.required,
            max_iterations=_typed(rlm.get("max_iterations"), int),
            timeout=_typed(rlm.get("timeout"), float),
            sandbox=_typed(rlm.get("sandbox"), str),
            reason=_typed(rlm.get("problem"), str),
        ),
    )
    return web.json_response(answer.model_dump(), headers={"Cache-Control": "no-cache"})


def _model_groups(value: Any) -> list[ModelGroup]:
    groups = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        groups.append(
            ModelGroup(
                endpoint=_typed(item.get("endpoint"), str) or "",
                label=_typed(item.get("label"), str) or "",
                titles=item.get("titles") is True,
                models=_strings(item.get("models")),
            )
        )
    return groups


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _typed(value: object, kind: type[T]) -> T | None:
    """`value` when it has the expected JSON type (an int counts as a float), else None:
    one odd field from a service must not break /api/config."""
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int):
        value = float(value)
    return value if isinstance(value, kind) else None


async def health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    services = ("chat", "image", "rlm")
    session = request.app[SESSION]
    reports = await asyncio.gather(
        *(probe_ready(session, gateway.service_url(name), HEALTH_PROBE_TIMEOUT) for name in services)
    )
    statuses = {name: ServiceHealth(**report) for name, report in zip(services, reports, strict=True)}
    overall = "ok" if all(s.status == "ready" for s in statuses.values()) else "degraded"
    answer = HealthResponse(status=overall, version=gateway.version, services=statuses)
    return web.json_response(answer.model_dump(), headers={"Cache-Control": "no-store"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[GATEWAY].openapi)


async def app_files(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    if tail.startswith("api/"):
        raise web.HTTPNotFound(text="There is no such API endpoint.")
    web_dir = request.app[GATEWAY].settings.web_dir
    path = app_file(web_dir, tail)
    if path is None:
        raise web.HTTPNotFound(text="There is no such file.")
    accept = request.headers.get("Accept-Encoding", "")
    return file_response(path, APP_CACHE_CONTROL, web_dir=web_dir, accept_encoding=accept)


async def vendor_files(request: web.Request) -> web.StreamResponse:
    web_dir = request.app[GATEWAY].settings.web_dir
    path = vendor_file(web_dir, request.match_info["tail"])
    if path is None:
        raise web.HTTPNotFound(text="There is no such library file.")
    accept = request.headers.get("Accept-Encoding", "")
    return file_response(path, VENDOR_CACHE_CONTROL, web_dir=web_dir, accept_encoding=accept)
