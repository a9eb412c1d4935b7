"""CHAT_LOG: one JSON line per finished request; a bad path stops start-up."""

from __future__ import annotations

import base64
import json

import pytest
from tinychat_chat.app import CHAT_LOG
from tinychat_chat.config import ChatSettings
from tinychat_common.settings import load_settings

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.messages import user
from tests.support.sse import read_events

pytestmark = pytest.mark.timeout(15)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 92


async def test_each_finished_request_writes_one_line_with_images_summarised(
    client_with, fake_openai: FakeOpenAI, tmp_path
):
    log_path = tmp_path / "chat.jsonl"
    client = await client_with(chat_log=str(log_path))
    fake_openai.enqueue(Reply(text="A tiny picture."), Reply(status=500))
    image = base64.b64encode(PNG).decode()
    body = {"messages": [user("what is it?", image=image, image_type="image/png")], "temperature": 0}
    await read_events(await client.post("/v1/chat/stream", json=body))
    await read_events(await client.post("/v1/chat/stream", json={"messages": [user("again")]}))
    await client.app[CHAT_LOG].flush()

    first, second = (json.loads(line) for line in log_path.read_text().splitlines())
    assert first["model"] == "fake-model"
    assert first["temperature"] == 0
    assert first["messages"] == [
        {"role": "user", "content": "what is it?", "image": {"type": "image/png", "bytes": len(PNG)}}
    ]
    assert first["response"] == "A tiny picture."
    assert first["finish_reason"] == "stop"
    assert first["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert first["duration_ms"] >= 0 and first["timestamp"].endswith("Z")
    assert image not in log_path.read_text()
    assert first["service"] == "chat" and first["outcome"] == "ok"
    assert second["finish_reason"] == "error" and second["outcome"] == "upstream_unavailable"


async def test_complete_requests_are_logged_too(client_with, fake_openai: FakeOpenAI, tmp_path):
    log_path = tmp_path / "chat.jsonl"
    client = await client_with(chat_log=str(log_path))
    await client.post("/v1/chat/complete", json={"messages": [user("q")]})
    await client.app[CHAT_LOG].flush()
    assert json.loads(log_path.read_text())["response"] == "Hello from the fake model."


@pytest.mark.parametrize("path", ["/no/such/dir/chat.jsonl", "/"])
def test_a_chat_log_path_that_cannot_be_written_stops_start_up(monkeypatch, capsys, path):
    monkeypatch.setenv("CHAT_LOG", path)
    with pytest.raises(SystemExit):
        load_settings(ChatSettings)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "CHAT_LOG" in lines[0]


def test_no_chat_log_by_default():
    assert ChatSettings().chat_log == ""
