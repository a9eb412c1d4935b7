"""The gateway's request handlers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ValidationError
from tinychat_common.errors import BadRequest, MessageTooLong, PayloadTooLarge
from tinychat_common.events import Content
from tinychat_common.models import ChatRequest, readable_validation_error
from tinychat_common.streaming import serve_events

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
from .ratelimit import client_address
from .routing import IMAGE_USAGE, STREAM_PATHS, choose_route
from .state import GATEWAY, Gateway
from .static import APP_CACHE_CONTROL, VENDOR_CACHE_CONTROL, app_file, file_response, vendor_file

# Validating a body this big (vision images) takes long enough to hold up other streams,
# so it runs in a worker thread; small bodies are faster inline.
THREAD_PARSE_BYTES = 64 * 1024
PASSCODE_HEADER = "X-RLM-Passcode"
HEALTH_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """Read and validate a JSON body; every problem is a 4xx that says what is wrong."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[GATEWAY].settings.max_request_bytes
        raise PayloadTooLarge(f"The request body is larger than the {limit}-byte limit.") from None
    if optional and not raw.strip():
        return model()
    try:
        if len(raw) > THREAD_PARSE_BYTES:
            return await asyncio.to_thread(model.model_validate_json, raw)
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
        if any(err["type"] == "model_type" and not err["loc"] for err in exc.errors()):
            raise BadRequest("The body must be a JSON object.", code="invalid_request") from None
        raise BadRequest(readable_validation_error(exc), code="invalid_request") from None


def forwarded_body(chat: ChatRequest) -> bytes:
    """The validated request as the services get it: what the client set, minus the passcode."""
    return chat.model_dump_json(exclude_unset=True, exclude={"rlm_passcode"}).encode()


def enforce_rate_limit(request: web.Request, gateway: Gateway, kind: str) -> None:
    window = gateway.rate_limits.get(kind)
    if window is None:
        return
    wait = window.hit(client_address(request, gateway.settings.trusted_proxies))
    if wait > 0:
        gateway.metrics.rate_limited.labels(kind).inc()
        raise TooManyRequests(kind, window.limit, retry_after=wait)


def check_passcode(request: web.Request, gateway: Gateway, from_body: str | None) -> None:
    given = request.headers.get(PASSCODE_HEADER, from_body)
    try:
        gateway.passcode.check(client_address(request, gateway.settings.trusted_proxies), given)
    except Exception:
        gateway.metrics.passcode_failures.inc()
        raise


async def _usage_text() -> AsyncIterator[Content]:
    yield Content(IMAGE_USAGE)


async def chat_stream(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    chat = await read_body(request, ChatRequest)
    route = choose_route(chat)
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
        body = forwarded_body(chat)
    enforce_rate_limit(request, gateway, route.service)
    url = gateway.service_url(route.service) + STREAM_PATHS[route.service]
    return await relay(request, gateway.http, gateway.metrics, route.service, url, body)


async def rlm_validate(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = await read_body(request, RlmValidateRequest, optional=True)
    check_passcode(request, gateway, body.passcode)
    answer = RlmValidateResponse(valid=True, passcode_required=gateway.passcode.required)
    return web.json_response(answer.model_dump())


async def config(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    settings = gateway.settings
    chat, image, rlm = await asyncio.gather(
        gateway.info.get(settings.chat_service_url + "/v1/models"),
        gateway.info.get(settings.image_service_url + "/v1/images/config"),
        gateway.info.get(settings.rlm_service_url + "/v1/rlm/config"),
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
        chat=ChatConfig(enabled=bool(chat.get("models"))),
        image=ImageConfig(enabled=image.get("enabled") is True, provider=_typed(image.get("provider"), str)),
        rlm=RlmConfig(
            enabled=rlm.get("enabled") is True,
            passcode_required=gateway.passcode.required,
            max_iterations=_typed(rlm.get("max_iterations"), int),
            timeout=_typed(rlm.get("timeout"), float),
            sandbox=_typed(rlm.get("sandbox"), str),
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


def _typed(value: Any, kind: type) -> Any:
    """`value` when it has the expected JSON type (an int counts as a float), else None:
    one odd field from a service must not break /api/config."""
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int | float):
        return float(value)
    return value if isinstance(value, kind) else None


async def health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    services = ("chat", "image", "rlm")
    reports = await asyncio.gather(
        *(probe_ready(gateway.http, gateway.service_url(name), HEALTH_PROBE_TIMEOUT) for name in services)
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
    path = app_file(request.app[GATEWAY].settings.web_dir, tail)
    if path is None:
        raise web.HTTPNotFound(text="There is no such file.")
    return file_response(path, APP_CACHE_CONTROL)


async def vendor_files(request: web.Request) -> web.StreamResponse:
    path = vendor_file(request.app[GATEWAY].settings.web_dir, request.match_info["tail"])
    if path is None:
        raise web.HTTPNotFound(text="There is no such library file.")
    return file_response(path, VENDOR_CACHE_CONTROL)
