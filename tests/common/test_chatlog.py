"""The shared CHAT_LOG writer: JSON lines, images summarised, bad paths refused."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from tinychat_common.chatlog import ChatLog, check_log_path, log_record, redact_images

pytestmark = pytest.mark.timeout(10)


async def test_entries_are_written_as_json_lines_in_order(tmp_path):
    path = tmp_path / "log.jsonl"
    chat_log = ChatLog(str(path))
    await chat_log.open()
    for n in range(300):
        chat_log.record({"n": n, "text": "ünïcode ✓"})
    await chat_log.close()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["n"] for line in lines] == list(range(300))
    assert lines[0]["text"] == "ünïcode ✓" and lines[0]["timestamp"].endswith("Z")


async def test_a_log_appends_to_an_existing_file(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"old": true}\n')
    chat_log = ChatLog(str(path))
    await chat_log.open()
    chat_log.record({"new": True})
    await chat_log.close()
    assert path.read_text().splitlines() == ['{"old": true}', path.read_text().splitlines()[1]]
    assert json.loads(path.read_text().splitlines()[1])["new"] is True


async def test_an_empty_path_turns_the_log_off(tmp_path):
    chat_log = ChatLog("")
    await chat_log.open()
    chat_log.record({"ignored": True})
    await chat_log.close()
    assert not chat_log.enabled
    assert list(tmp_path.iterdir()) == []


def test_images_are_replaced_by_type_and_size():
    data = b"\x89PNG" + b"\x00" * 96
    messages = [
        {
            "role": "user",
            "content": "look",
            "image": base64.b64encode(data).decode(),
            "image_type": "image/png",
        },
        {"role": "assistant", "content": "nice", "image": None, "image_type": None},
    ]
    assert redact_images(messages) == [
        {"role": "user", "content": "look", "image": {"type": "image/png", "bytes": 100}},
        {"role": "assistant", "content": "nice"},
    ]


def test_check_log_path_accepts_a_new_file_in_an_existing_directory(tmp_path):
    assert check_log_path(str(tmp_path / "new.jsonl")) == str(tmp_path / "new.jsonl")
    assert check_log_path("") == ""


@pytest.mark.parametrize("relative", ["missing/dir/log.jsonl", "."])
def test_check_log_path_refuses_missing_directories_and_directories(tmp_path, relative):
    with pytest.raises(ValueError):
        check_log_path(str(tmp_path / relative))


async def test_a_new_log_is_created_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "private.jsonl"
    old_umask = os.umask(0o022)  # a usual umask would give 0644
    try:
        chat_log = ChatLog(str(path))
        await chat_log.open()
        chat_log.record({"n": 1})
        await chat_log.close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_an_existing_world_readable_log_is_made_private(tmp_path):
    path = tmp_path / "open.jsonl"
    path.write_text("")
    path.chmod(0o644)
    chat_log = ChatLog(str(path))
    await chat_log.open()
    await chat_log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_service_writes_the_common_fields_first_in_one_shape():
    chat = log_record("chat", model="m", outcome="ok", seconds=1.23456, user="ann", response="hi")
    image = log_record("image", model="flux", outcome="cancelled", seconds=0.5, prompt="a fox")
    assert list(chat) == ["timestamp", "service", "user", "model", "outcome", "duration_ms", "response"]
    assert chat["duration_ms"] == 1234.6 and chat["timestamp"].endswith("Z")
    assert list(image)[:5] == ["timestamp", "service", "model", "outcome", "duration_ms"]
    assert "user" not in image  # no identity is no field, not a null


def test_a_field_the_schema_does_not_list_is_refused():
    with pytest.raises(ValueError, match="duration"):
        log_record("image", model="flux", outcome="ok", seconds=1, duration=1)
    with pytest.raises(ValueError, match="prompt"):
        log_record("rlm", model="m", outcome="answered", seconds=1, prompt="not an rlm field")
