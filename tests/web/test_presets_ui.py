"""Prompt presets: a system prompt saved under a name, a chat started from it, kept across
reloads, deletable."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

PROMPT = "You are a patient French tutor. Answer in simple French."


def test_save_a_preset_and_start_a_chat_from_it(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Bonjour !")))
    open_app(page)
    page.click("#open-settings")
    page.fill("#system-prompt", PROMPT)
    page.get_by_role("button", name="Save as preset…").click()
    page.fill("#dialog-input", "French tutor")
    page.click("#dialog-ok")
    page.locator("#preset-select option", has_text="French tutor").wait_for(state="attached")

    page.reload()
    page.wait_for_selector("#model-select option", state="attached")
    chip = page.get_by_role("button", name="Start with French tutor")
    chip.click()
    page.click("#open-settings")
    assert page.input_value("#system-prompt") == PROMPT
    send(page, "Salut")
    wait_for_answers(page, 1)
    body = stack.run(lambda: stack.upstream.history[-1])
    assert body["messages"][0] == {"role": "system", "content": PROMPT}

    # Applying a preset to the chat on screen, then deleting it.
    page.click("#new-chat")
    if page.locator("#settings-panel").is_hidden():
        page.click("#open-settings")
    page.select_option("#preset-select", label="French tutor")
    assert page.input_value("#system-prompt") == PROMPT
    page.get_by_role("button", name="Delete preset").click()
    page.click("#dialog-ok")
    assert page.locator("#preset-select option", has_text="French tutor").count() == 0
    assert page.locator("#preset-chips").is_hidden()
