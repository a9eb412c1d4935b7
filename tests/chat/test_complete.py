"""POST /v1/chat/complete: the whole answer as JSON, for rlm-service."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply, openai_error
from tests.support.messages import user

pytestmark = pytest.mark.timeout(15)


async def test_complete_answers_content_usage_and_finish_reason(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(text="print(42)", finish_reason="stop"))
    response = await chat_client.post("/v1/chat/complete", json={"messages": [user("code please")]})
    assert response.status == 200
    assert await response.json() == {
        "content": "print(42)",
        "reasoning": "",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        "model": "fake-model",
    }


async def test_complete_forwards_stop_max_tokens_and_temperature_zero(chat_client, fake_openai: FakeOpenAI):
    body = {"messages": [user("q")], "temperature": 0, "stop": ["```\n", "FINAL"], "max_tokens": 12}
    await chat_client.post("/v1/chat/complete", json=body)
    sent = fake_openai.history[-1]
    assert sent["temperature"] == 0
    assert sent["stop"] == ["```\n", "FINAL"]
    assert sent["max_tokens"] == 12


async def test_complete_failure_is_json_with_the_errors_status(chat_client, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply(status=401, error_body=openai_error("Incorrect API key provided: sk-test-sec")))
    response = await chat_client.post("/v1/chat/complete", json={"messages": [user("q")]})
    assert response.status == 502
    body = await response.json()
    assert body["error"] == "upstream_auth_failed"
    assert "sk-test" not in body["detail"]


async def test_complete_reports_a_stall_as_a_gateway_timeout(client_with, fake_openai: FakeOpenAI):
    client = await client_with(upstream_idle_timeout=0.2)
    fake_openai.enqueue(Reply(text="a b c", stall_after=1))
    response = await client.post("/v1/chat/complete", json={"messages": [user("q")]})
    assert response.status == 504
    assert (await response.json())["error"] == "upstream_stalled"


async def test_complete_refuses_an_unknown_model(chat_client, fake_openai: FakeOpenAI):
    response = await chat_client.post("/v1/chat/complete", json={"messages": [user("q")], "model": "nope"})
    assert response.status == 400
    assert (await response.json())["error"] == "unknown_model"
    assert fake_openai.history == []
