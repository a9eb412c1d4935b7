"""/api/openapi.json: valid OpenAPI 3.1, every route described, and the schemas are the
models that validate the requests (so a valid request per the description is accepted and
an invalid one refused, and the answers match their schemas)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from tinychat_common.models import ChatRequest

from tests.support.messages import chat_body

pytestmark = pytest.mark.timeout(20)


async def fetch_spec(gateway: aiohttp.ClientSession) -> dict[str, Any]:
    async with gateway.get("/api/openapi.json") as response:
        assert response.status == 200
        return await response.json()


def validator_for(spec: dict[str, Any], schema: str) -> Draft202012Validator:
    return Draft202012Validator({**spec, "$ref": f"#/components/schemas/{schema}"})


async def test_openapi_document_is_valid_openapi_3_1(gateway: aiohttp.ClientSession) -> None:
    spec = await fetch_spec(gateway)
    assert spec["openapi"].startswith("3.1")
    validate(spec)


async def test_every_api_and_probe_route_is_described(gateway: TestClient) -> None:
    spec = await fetch_spec(gateway)
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in gateway.app.router.routes()
        if route.resource is not None and route.method != "HEAD" and "{tail" not in route.resource.canonical
    }
    described = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert routes and routes <= described
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert "200" in operation["responses"], (path, method)
    chat = spec["paths"]["/api/chat/stream"]["post"]["responses"]
    for status in ("400", "401", "413", "429"):
        assert chat[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }


async def test_chat_request_schema_is_the_pydantic_model(gateway: aiohttp.ClientSession) -> None:
    spec = await fetch_spec(gateway)
    derived = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    described = spec["components"]["schemas"]["ChatRequest"]
    assert described == {k: v for k, v in derived.items() if k != "$defs"}
    assert spec["components"]["schemas"]["Message"] == derived["$defs"]["Message"]


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        (chat_body("/image"), True),
        (chat_body("/image", temperature=0, rlm=False, show_rlm_thinking=True), True),
        ({"messages": []}, False),
        (chat_body("/image", temperature=3), False),
        (chat_body("/image", unknown=1), False),
        ({"messages": [{"role": "user", "content": "/image", "colour": "red"}]}, False),
    ],
)
async def test_description_and_gateway_agree_on_what_is_valid(
    gateway: aiohttp.ClientSession, body: dict, valid: bool
) -> None:
    spec = await fetch_spec(gateway)
    assert validator_for(spec, "ChatRequest").is_valid(body) is valid
    async with gateway.post("/api/chat/stream", json=body) as response:
        assert (response.status == 200) is valid
        if not valid:
            validator_for(spec, "ErrorBody").validate(await response.json())
        else:
            await response.read()


async def test_answers_match_their_described_schemas(gateway: aiohttp.ClientSession) -> None:
    spec = await fetch_spec(gateway)
    validator_for(spec, "ConfigResponse").validate(await (await gateway.get("/api/config")).json())
    validator_for(spec, "HealthResponse").validate(await (await gateway.get("/api/health")).json())
    validator_for(spec, "RlmValidateResponse").validate(
        await (await gateway.post("/api/rlm/validate")).json()
    )
