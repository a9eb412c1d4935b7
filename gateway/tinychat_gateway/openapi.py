"""/api/openapi.json: OpenAPI 3.1, built from the same pydantic models that validate the
requests (tinychat_common.models) and shape the answers (tinychat_gateway.models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from tinychat_common.models import ChatRequest

from .auth import LoginRequest, OkResponse, SessionResponse
from .models import (
    ConfigResponse,
    ErrorBody,
    HealthResponse,
    RlmValidateRequest,
    RlmValidateResponse,
    StreamEvent,
    TitleResponse,
)

REF = "#/components/schemas/{model}"
SCHEMA_MODELS: list[type[BaseModel]] = [
    ChatRequest,
    RlmValidateRequest,
    RlmValidateResponse,
    ConfigResponse,
    HealthResponse,
    ErrorBody,
    StreamEvent,
    LoginRequest,
    OkResponse,
    SessionResponse,
    TitleResponse,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "The request is not valid (bad JSON, unknown keys, out-of-range values).",
        401: "RLM needs a passcode and the one given is missing or wrong, or a login is needed.",
        403: "A Host that is not served here, or a request from another site.",
        404: "Not available in this configuration.",
        409: "Titles from the model are off for this model's endpoint.",
        413: "The body or a message is too large.",
        415: "The body is not application/json.",
        429: "Too many requests or wrong passcodes, or busy (every slot in use); see Retry-After.",
        502: "A service behind the gateway answered something unexpected.",
        503: "The server is shutting down.",
    }
    answers = {str(status): _json(ErrorBody, meaning[status]) for status in statuses}
    for status in (429,):
        if str(status) in answers:
            answers[str(status)]["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
    return answers


def _sse_event_schema() -> dict[str, Any]:
    """One server-sent event: its `data` line is a StreamEvent as JSON."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref(StreamEvent),
            },
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }


def _operations() -> dict[str, Any]:
    passcode_header = {
        "name": "X-RLM-Passcode",
        "in": "header",
        "required": False,
        "description": "The RLM passcode, when RLM_PASSCODE is set.",
        "schema": {"type": "string"},
    }
    text = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "/api/chat/stream": {
            "post": {
                "summary": "Stream an answer: chat, `/image <prompt>`, or an RLM job (`rlm: true`).",
                "operationId": "chatStream",
                "parameters": [passcode_header],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(ChatRequest)}},
                },
                "responses": {
                    "200": {
                        "description": "Server-sent events: one `data: <StreamEvent JSON>` line and a "
                        "blank line each, `: keepalive` comments, always ending with a `done` event.",
                        "content": {
                            "text/event-stream": {
                                # Before OpenAPI 3.2 (itemSchema), tools read an event
                                # stream's `schema` as describing each event.
                                "schema": _sse_event_schema(),
                                "x-event-schema": _ref(StreamEvent),
                            }
                        },
                    },
                    **_errors(400, 401, 403, 413, 415, 429, 502, 503),
                },
            }
        },
        "/api/chat/title": {
            "post": {
                "summary": "A short title for a conversation, from one cheap non-streaming call to "
                "its model (where the model's endpoint allows titles).",
                "operationId": "chatTitle",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(ChatRequest)}},
                },
                "responses": {
                    "200": _json(TitleResponse, "The title."),
                    **_errors(400, 409, 413, 502, 503),
                },
            }
        },
        "/api/rlm/validate": {
            "post": {
                "summary": "Check an RLM passcode.",
                "operationId": "rlmValidate",
                "parameters": [passcode_header],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref(RlmValidateRequest)}},
                },
                "responses": {
                    "200": _json(RlmValidateResponse, "The passcode is right, or none is needed."),
                    **_errors(400, 401, 403, 413, 415, 429, 503),
                },
            }
        },
        "/api/auth/login": {
            "post": {
                "summary": "Log in (AUTH_MODE=password): sets the signed session cookie.",
                "operationId": "login",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(LoginRequest)}},
                },
                "responses": {
                    "200": _json(OkResponse, "Logged in; the answer sets the tinychat_session cookie."),
                    **_errors(400, 401, 403, 404, 413, 415, 429, 503),
                },
            }
        },
        "/api/auth/logout": {
            "post": {
                "summary": "Log out: clears the session cookie.",
                "operationId": "logout",
                "responses": {"200": _json(OkResponse, "Logged out."), **_errors(403, 415, 503)},
            }
        },
        "/login": {
            "get": {
                "summary": "The login page (AUTH_MODE=password).",
                "operationId": "loginPage",
                "responses": {
                    "200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/login.js": {
            "get": {
                "summary": "The login page's script.",
                "operationId": "loginScript",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/javascript": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/auth/session": {
            "get": {
                "summary": "The access mode, and whether this client is signed in.",
                "operationId": "getSession",
                "responses": {"200": _json(SessionResponse, "OK"), **_errors(403, 503)},
            }
        },
        "/api/config": {
            "get": {
                "summary": "Models, defaults, limits, and which features are enabled.",
                "operationId": "getConfig",
                "responses": {"200": _json(ConfigResponse, "OK"), **_errors(401, 403, 503)},
            }
        },
        "/api/health": {
            "get": {
                "summary": "The gateway's status and each service's readiness.",
                "operationId": "getHealth",
                "responses": {"200": _json(HealthResponse, "OK"), **_errors(401, 403, 503)},
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description.",
                "operationId": "getOpenApi",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness.",
                "operationId": "healthz",
                "responses": {
                    "200": {
                        "description": "Alive.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: 503 while shutting down.",
                "operationId": "readyz",
                "responses": {
                    "200": {
                        "description": "Ready.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "503": {
                        "description": "Not ready or shutting down.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics.",
                "operationId": "metrics",
                "responses": {"200": text},
            }
        },
    }


def build_openapi(version: str) -> dict[str, Any]:
    _, schemas = models_json_schema([(model, "validation") for model in SCHEMA_MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TinyChat gateway",
            "version": version,
            "description": "The public API of TinyChat. Errors before a stream starts are JSON "
            "`{error, detail}`; after it starts they are an `error` event followed by `done`.",
        },
        "paths": _operations(),
        "components": {"schemas": schemas.get("$defs", {})},
    }
