"""RLM jobs that cannot finish: every end is a readable error and one `done`, and the
sandbox is gone and the token back, every time."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_upstream import Reply, openai_error
from tests.rlm.conftest import MakeStack
from tests.rlm.harness import repl, sandbox_gone
from tests.support.messages import user
from tests.support.polling import wait_until
from tests.support.sse import EventReader, assert_ends_with_one_done, is_code_step

pytestmark = pytest.mark.timeout(60)


def error_of(events: list[dict]) -> dict:
    errors = [e for e in events if "error" in e]
    assert len(errors) == 1, events
    return errors[0]


async def test_job_timeout_ends_with_a_readable_error_and_kills_the_sandbox(make_stack: MakeStack) -> None:
    # 5 s: the sandbox must have started (a docker one can take over a second on a busy machine).
    stack, _llm = await make_stack([repl("import time\ntime.sleep(30)")], rlm_timeout=5.0)
    events = await stack.stream([user("Sleep.")])
    error = error_of(events)
    assert error["code"] == "rlm_timeout"
    assert "longer than its limit of 5 s" in error["error"]
    assert assert_ends_with_one_done(events)["finish_reason"] == "error"
    assert await sandbox_gone(stack.sandboxes.created[0])
    assert await stack.tokens_in_use() == 0
    assert stack.metric("tinychat_rlm_jobs_total", outcome="timeout") == 1


async def test_a_slow_model_counts_against_the_job_timeout(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([Reply(text=repl("FINAL(1)"), first_byte_delay=20)], rlm_timeout=5.0)
    events = await stack.stream([user("Slow.")])
    assert error_of(events)["code"] == "rlm_timeout"
    assert_ends_with_one_done(events)
    await wait_until(lambda: sandbox_gone(stack.sandboxes.created[0]))


async def test_cell_timeout_ends_with_a_readable_error_and_kills_the_sandbox(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([repl("while True:\n    pass")], rlm_cell_timeout=1.0)
    events = await stack.stream([user("Loop.")])
    error = error_of(events)
    assert error["code"] == "cell_timeout"
    assert "longer than its limit of 1 s" in error["error"]
    assert assert_ends_with_one_done(events)["finish_reason"] == "error"
    assert await sandbox_gone(stack.sandboxes.created[0])
    assert await stack.tokens_in_use() == 0


async def test_disconnect_kills_the_sandbox_and_releases_the_token(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([repl("import time\ntime.sleep(30)")], rlm_cell_timeout=60)
    response = await stack.client.post("/v1/rlm/stream", json={"messages": [user("Sleep.")]})
    await EventReader(response, seconds=15).until(is_code_step)
    assert await stack.tokens_in_use() == 1
    sandbox = stack.sandboxes.created[0]
    assert sandbox.alive
    response.close()  # the user pressed stop

    await wait_until(lambda: sandbox_gone(sandbox))
    await wait_until(lambda: stack.holds_tokens(0))
    await wait_until(lambda: stack.metric("tinychat_rlm_jobs_total", outcome="cancelled") == 1)
    assert stack.metric("tinychat_rlm_sandbox_kills_total", reason="cancelled") == 1


async def test_over_the_limit_a_job_is_refused_at_once_as_busy(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([repl("import time\ntime.sleep(30)")], max_concurrent_rlm=1)
    first = await stack.client.post("/v1/rlm/stream", json={"messages": [user("Hold.")]})
    await wait_until(lambda: stack.holds_tokens(1))
    second = await stack.client.post("/v1/rlm/stream", json={"messages": [user("Me too.")]})
    assert second.status == 429
    assert second.headers["Retry-After"] == "5"  # the same busy answer as image-service's
    body = await second.json()
    assert body["error"] == "busy" and "All 1 rlm slots are in use" in body["detail"]
    first.close()
    await wait_until(lambda: stack.holds_tokens(0))
    assert stack.metric("tinychat_rlm_jobs_total", outcome="busy") == 1


async def test_a_conversation_that_does_not_end_with_a_question_is_a_400(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([])
    response = await stack.client.post(
        "/v1/rlm/stream", json={"messages": [user("Hi"), {"role": "assistant", "content": "Hello"}]}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "no_question"
    assert stack.sandboxes.created == []
    assert await stack.tokens_in_use() == 0


async def test_unknown_fields_are_a_400_before_anything_runs(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([])
    response = await stack.client.post("/v1/rlm/stream", json={"messages": [user("Hi")], "evil": 1})
    assert response.status == 400
    assert "evil" in (await response.json())["detail"]


async def test_rlm_disabled_is_a_readable_503_and_config_says_so(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([], rlm_enabled=False)
    response = await stack.client.post("/v1/rlm/stream", json={"messages": [user("Hi")]})
    assert response.status == 503
    assert (await response.json())["error"] == "rlm_disabled"
    config = await (await stack.client.get("/v1/rlm/config")).json()
    assert config["enabled"] is False


async def test_config_reports_what_the_gateway_needs(make_stack: MakeStack, backend: str) -> None:
    stack, _llm = await make_stack([], rlm_max_iterations=7, rlm_timeout=45)
    config = await (await stack.client.get("/v1/rlm/config")).json()
    expected = {
        "enabled": True,
        "problem": None,
        "max_iterations": 7,
        "max_depth": 1,
        "timeout": 45.0,
        "sandbox": backend,
    }
    assert config == expected


async def test_model_api_failure_is_a_readable_error_and_the_sandbox_is_killed(make_stack: MakeStack) -> None:
    rate_limited = Reply(status=429, error_body=openai_error("Rate limit reached", "rate_limit_error"))
    stack, _llm = await make_stack([rate_limited])
    events = await stack.stream([user("Hi")])
    error = error_of(events)
    assert error["code"] == "upstream_rate_limited"
    assert "sk-test" not in json.dumps(events)
    assert_ends_with_one_done(events)
    assert await sandbox_gone(stack.sandboxes.created[0])


async def test_chat_service_down_is_a_readable_error(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([], chat_service_url="http://127.0.0.1:9")
    events = await stack.stream([user("Hi")])
    error = error_of(events)
    assert error["code"] == "chat_service_unavailable"
    assert "chat service is not available" in error["error"]
    assert_ends_with_one_done(events)
    assert await sandbox_gone(stack.sandboxes.created[0])
    assert await stack.tokens_in_use() == 0


async def test_a_sandbox_that_dies_mid_job_is_a_readable_error(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([repl("import os\nos._exit(3)")])
    events = await stack.stream([user("Die.")])
    error = error_of(events)
    assert error["code"] == "sandbox_failed"
    assert_ends_with_one_done(events)
    assert await sandbox_gone(stack.sandboxes.created[0])


async def test_readyz_reports_local_tokens(make_stack: MakeStack) -> None:
    stack, _llm = await make_stack([])
    response = await stack.client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["tokens"] == "local"
