"""A reasoning model in the browser: the live "Thinking…" block, then "Thought for N s",
collapsed; the reasoning kept with the message but never sent back; the usage line."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

THOUGHTS = [f"step {i} of my reasoning. " for i in range(12)]


def test_reasoning_shows_live_then_collapses_as_thought_for_n_seconds(page, stack):
    # 12 reasoning deltas 0.15 s apart: about 2 s of thinking before the answer starts.
    reply = Reply(text="The answer is 4.", reasoning=THOUGHTS, dialect="deepseek", chunk_delay=0.15)
    stack.run(lambda: stack.upstream.enqueue(reply))
    open_app(page)
    send(page, "What is 2+2?")
    block = page.locator("li.message.assistant details.reasoning")
    block.locator("summary", has_text="Thinking…").wait_for()
    assert block.get_attribute("open") is None  # collapsed while it thinks
    wait_for_answers(page, 1)
    summary = block.locator("summary").inner_text()
    assert summary.startswith("Thought for ") and summary.endswith(" s"), summary
    assert int(summary.split()[2]) >= 1
    assert block.get_attribute("open") is None
    assert "step 0" not in last_answer(page).locator(".message-content").inner_text()
    block.locator("summary").click()
    assert block.locator(".reasoning-body").inner_text().startswith("step 0 of my reasoning.")
    assert "step 11" in block.locator(".reasoning-body").inner_text()

    # Stored with the message; the next request carries only the answer's text.
    stored = page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.startsWith('tinychat.conversation.'))"
        ".map(k => JSON.parse(localStorage.getItem(k)))[0]"
    )
    assert stored["messages"][1]["reasoning"] == "".join(THOUGHTS)
    send(page, "And 3+3?")
    wait_for_answers(page, 2)
    sent = stack.run(lambda: stack.upstream.history[-1]["messages"])
    assert {"role": "assistant", "content": "The answer is 4."} in sent
    assert "reasoning" not in json.dumps(sent)


def test_a_think_block_inline_is_shown_as_reasoning_not_as_the_answer(page, stack):
    chunks = ["<th", "in", "k>weighing options", "</think>", "\n\nPick B."]
    stack.run(lambda: stack.upstream.enqueue(Reply(chunks=chunks, chunk_delay=0.05)))
    open_app(page)
    send(page, "A or B?")
    wait_for_answers(page, 1)
    assert last_answer(page).locator(".message-content").inner_text().strip() == "Pick B."
    block = last_answer(page).locator("details.reasoning")
    block.locator("summary").click()
    assert block.locator(".reasoning-body").inner_text() == "weighing options"


def test_the_usage_line_shows_the_numbers_the_api_returned(page, stack):
    usage = {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290}
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Short answer.", usage=usage)))
    open_app(page)
    send(page, "hi")
    wait_for_answers(page, 1)
    line = last_answer(page).locator(".usage").inner_text()
    assert "1,234 in" in line and "56 out" in line, line
    assert "TTFT" in line and "tok/s" in line, line
    assert "conversation 1,290 tokens" in line, line
    assert "estimated" not in line


def test_an_estimate_is_marked_as_one(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="x" * 40, usage=None)))
    open_app(page)
    send(page, "hi")
    wait_for_answers(page, 1)
    line = last_answer(page).locator(".usage").inner_text()
    assert "≈10 out" in line and "estimated" in line, line


def test_reasoning_travels_in_exports_and_comes_back_on_import(page, stack, tmp_path):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Blue.", reasoning=["Sky scatters short waves."])))
    open_app(page)
    send(page, "Why is the sky blue?")
    wait_for_answers(page, 1)
    with page.expect_download() as json_download:
        page.click("#export-all-json")
    exported = tmp_path / "export.json"
    json_download.value.save_as(exported)
    answer = json.loads(exported.read_text())["conversations"][0]["messages"][1]
    assert answer["reasoning"] == "Sky scatters short waves." and answer["content"] == "Blue."
    with page.expect_download() as md_download:
        page.click("#export-all-md")
    markdown = tmp_path / "export.md"
    md_download.value.save_as(markdown)
    assert "> Sky scatters short waves." in markdown.read_text()

    page.click("#clear-all")
    page.click("#dialog-ok")
    page.set_input_files("#import-file", str(exported))
    page.locator(".conversation-link", has_text="Why is the sky blue?").click()
    block = last_answer(page).locator("details.reasoning")
    assert block.locator("summary").inner_text().startswith("Thought")
    block.locator("summary").click()
    assert block.locator(".reasoning-body").inner_text() == "Sky scatters short waves."
