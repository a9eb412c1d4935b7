"""The one body reader: the same 4xx, in the same words, from the gateway and every service."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, ConfigDict
from tinychat_common.bodies import THREAD_PARSE_BYTES, read_body, read_body_and_bytes
from tinychat_common.errors import error_middleware
from tinychat_common.models import ChatRequest
from tinychat_common.slow_clients import BODY_LIMIT, BODY_LIMIT_SETTING

pytestmark = pytest.mark.timeout(20)

LIMIT = 4 * THREAD_PARSE_BYTES


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = "default"


def body_app() -> web.Application:
    app = web.Application(client_max_size=LIMIT, middlewares=[error_middleware])
    app[BODY_LIMIT] = LIMIT
    app[BODY_LIMIT_SETTING] = "MAX_REQUEST_BYTES"

    async def chat(request: web.Request) -> web.Response:
        body, raw = await read_body_and_bytes(request, ChatRequest)
        return web.json_response({"messages": len(body.messages), "bytes": len(raw)})

    async def options(request: web.Request) -> web.Response:
        body = await read_body(request, Options, optional=True)
        return web.json_response({"name": body.name})

    app.router.add_post("/chat", chat)
    app.router.add_post("/options", options)
    return app


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(body_app())


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ('{"messages": [', "invalid_json", "The body is not valid JSON."),
        ("", "invalid_json", "The body is not valid JSON."),
        ("[1, 2]", "invalid_request", "The body must be a JSON object."),
        ('{"messages": [{"role": "robot"}]}', "invalid_request", "messages.0.role: "),
        ('{"messages": [{"role": "user"}], "colour": 1}', "invalid_request", "colour: unknown field"),
    ],
)
async def test_a_bad_body_is_a_400_that_says_what_is_wrong(
    client: TestClient, body: str, code: str, detail: str
) -> None:
    response = await client.post("/chat", data=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == code
    assert answer["detail"].startswith(detail)


async def test_a_body_over_the_limit_is_a_413_naming_the_limit_and_its_setting(client: TestClient) -> None:
    response = await client.post("/chat", data=b"x" * (LIMIT + 1))
    assert response.status == 413
    answer = await response.json()
    assert answer == {
        "error": "payload_too_large",
        "detail": f"The request body is larger than the {LIMIT}-byte limit (MAX_REQUEST_BYTES).",
    }


async def test_a_large_body_is_validated_whole_and_its_bytes_kept(client: TestClient) -> None:
    raw = json.dumps({"messages": [{"role": "user", "content": "y" * (2 * THREAD_PARSE_BYTES)}]}).encode()
    response = await client.post("/chat", data=raw)
    assert response.status == 200
    assert await response.json() == {"messages": 1, "bytes": len(raw)}


async def test_an_optional_body_may_be_empty_but_not_wrong(client: TestClient) -> None:
    assert await (await client.post("/options", data=b"")).json() == {"name": "default"}
    assert await (await client.post("/options", json={"name": "fox"})).json() == {"name": "fox"}
    assert (await client.post("/options", data=b"nope")).status == 400
