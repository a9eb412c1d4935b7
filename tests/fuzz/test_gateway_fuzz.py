"""Schemathesis against the running gateway, from its own /api/openapi.json: valid and
invalid requests to every public operation. No 5xx; every answer matches the description
(status, content type, body schema, headers); every bad input is refused with a 4xx whose
JSON body says what is wrong; every stream ends with exactly one `done`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from .stack import FuzzStack

# Examples per operation and generation mode: enough to reach every validation branch,
# few enough that the whole run stays well under a minute on a shared CI machine.
MAX_EXAMPLES = 100

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def stack() -> Iterator[FuzzStack]:
    running = FuzzStack().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def gateway_schema(stack: FuzzStack) -> Any:
    return schemathesis.openapi.from_url(stack.url + "/api/openapi.json")


# Every public operation, named here so that one the description drops fails the test
# below instead of going unfuzzed. (schemathesis' own pytest plugin is not used: its
# lazy-schema parametrization does not run under pytest 9.)
OPERATIONS = [
    ("POST", "/api/chat/stream"),
    ("POST", "/api/rlm/validate"),
    ("GET", "/api/config"),
    ("GET", "/api/health"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/session"),
]


def test_the_description_covers_every_public_operation(gateway_schema: Any) -> None:
    described = {(op.ok().method.upper(), op.ok().path) for op in gateway_schema.get_all_operations()}
    assert set(OPERATIONS) <= described, described


def content_type(response: Any) -> str:
    for name, values in response.headers.items():
        if name.lower() == "content-type":
            return values[0] if isinstance(values, list) else str(values)
    return ""


def readable_client_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx is JSON `{"error": <code>, "detail": <sentence>}`, never an empty or HTML page."""
    if not 400 <= response.status_code < 500:
        return None
    assert content_type(response).startswith("application/json"), (
        f"{response.status_code} answered as {content_type(response)!r}"
    )
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("detail"), str) and len(body["detail"]) >= 10, body
    assert "Traceback" not in body["detail"], body
    return True


def streams_end_with_one_done(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code != 200 or "event-stream" not in content_type(response):
        return None
    events = [
        json.loads(line[len("data:") :])
        for line in response.content.decode().splitlines()
        if line.startswith("data:")
    ]
    dones = [e for e in events if e.get("done") is True]
    assert events and len(dones) == 1 and events[-1] is dones[0], events[-3:]
    return True


# Invalid requests need an input to spoil: the GETs and logout take none.
RUNS = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or (method == "POST" and path != "/api/auth/logout")
]


@pytest.mark.parametrize(("method", "path", "mode"), RUNS, ids=[f"{m} {p} {g}" for m, p, g in RUNS])
def test_gateway_answers_every_request_as_described(
    gateway_schema: Any, stack: FuzzStack, method: str, path: str, mode: GenerationMode
) -> None:
    operation = gateway_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_described(case: Any) -> None:
        case.call_and_validate(
            headers={"Cookie": stack.cookie},
            additional_checks=[readable_client_errors, streams_end_with_one_done],
            # Requests the schema allows may still be refused with a readable 400 for what
            # only the running server knows: a model it does not offer, an image that is not
            # base64, a message over MAX_MESSAGE_LENGTH. readable_client_errors checks those.
            excluded_checks=[positive_data_acceptance],
            timeout=20,
        )

    answers_as_described()


@pytest.mark.parametrize("path", ["/api/chat/stream", "/api/rlm/validate", "/api/auth/login"])
def test_any_bytes_as_a_body_get_a_readable_answer(stack: FuzzStack, path: str) -> None:
    """Below the schema: bodies that are not JSON, not UTF-8, or not an object, sent with
    and without a JSON content type."""
    session = requests.Session()

    @given(
        body=st.one_of(
            st.binary(max_size=512),
            st.text(max_size=256).map(str.encode),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
                ),
                max_leaves=12,
            ).map(lambda value: json.dumps(value).encode()),
        ),
        content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
    )
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def answers_readably(body: bytes, content_type: str) -> None:
        response = session.post(
            stack.url + path,
            data=body,
            headers={"Content-Type": content_type, "Cookie": stack.cookie},
            timeout=20,
        )
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if response.status_code >= 400:
            error = response.json()
            assert isinstance(error.get("error"), str) and isinstance(error.get("detail"), str), error
            assert "Traceback" not in response.text

    try:
        answers_readably()
    finally:
        session.close()
