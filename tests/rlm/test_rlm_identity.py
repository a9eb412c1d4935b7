"""The signed-in user the gateway names reaches every log line an RLM job writes: rlm-service's
audit line and chat-service's record of each model call the job makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from tinychat_chat.app import create_app as create_chat_app

from tests.fakes.openai_upstream import FakeOpenAI
from tests.rlm.harness import ScriptedLLM, repl, rlm_settings, start_rlm_service
from tests.support.chat_service import chat_settings_for
from tests.support.messages import user
from tests.support.net import server_url
from tests.support.sse import answer_text, read_events

pytestmark = pytest.mark.timeout(60)


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("backend", ["process"])
async def test_the_user_is_in_the_rlm_audit_line_and_in_every_model_call_it_logs(
    fake_openai: FakeOpenAI, backend: str, tmp_path: Path
) -> None:
    chat_log, rlm_log = tmp_path / "chat.jsonl", tmp_path / "rlm.jsonl"
    chat_server = TestServer(create_chat_app(chat_settings_for(fake_openai, chat_log=str(chat_log))))
    await chat_server.start_server()
    ScriptedLLM(fake_openai, [repl("FINAL(llm_query('hi'))")], lambda prompt: "sub-answer")
    settings = rlm_settings(server_url(chat_server), backend, chat_log=str(rlm_log))
    client, _sandboxes = await start_rlm_service(settings)
    try:
        body = {"messages": [user("Who asks?")]}
        headers = {"X-TinyChat-User": "alice@example.com"}
        async with client.post("/v1/rlm/stream", json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            events = await read_events(response)
    finally:
        await client.close()
        await chat_server.close()
    assert answer_text(events) == "sub-answer"
    (audit,) = [line for line in log_lines(rlm_log) if line.get("service") == "rlm"]
    assert audit["user"] == "alice@example.com"
    calls = log_lines(chat_log)
    assert len(calls) >= 2  # the root turn and the llm_query sub-call
    assert {line.get("user") for line in calls} == {"alice@example.com"}
