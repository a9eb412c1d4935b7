"""Branches instead of deletion: regenerate, edit & resend and retry keep the old path as a
version of the message, `‹ 2/3 ›` switches between them, exports keep every branch, and
conversations stored before branches existed still load."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, user_messages_sent, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def shown_texts(page) -> list[str]:
    return page.locator("li.message .message-content").all_inner_texts()


def versions_label(message) -> str:
    return message.locator(".version-label").inner_text()


def test_regenerate_keeps_the_first_answer_as_a_version(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="First answer"), Reply(text="Second answer")))
    open_app(page)
    send(page, "Question")
    wait_for_answers(page, 1)
    last_answer(page).get_by_role("button", name="Regenerate answer").click()
    last_answer(page).get_by_text("Second answer").wait_for()
    wait_for_answers(page, 1)
    assert page.locator("li.message.assistant").count() == 1
    assert versions_label(last_answer(page)) == "2/2"

    last_answer(page).get_by_role("button", name="Previous version").click()
    last_answer(page).get_by_text("First answer").wait_for()
    assert versions_label(last_answer(page)) == "1/2"
    assert last_answer(page).get_by_role("button", name="Previous version").is_disabled()
    page.reload()
    last_answer(page).get_by_text("First answer").wait_for()
    last_answer(page).get_by_role("button", name="Next version").click()
    last_answer(page).get_by_text("Second answer").wait_for()
    history = stack.run(lambda: list(stack.upstream.history))
    assert [user_messages_sent(h) for h in history] == [["Question"], ["Question"]]


def test_edit_and_resend_keeps_the_old_question_and_what_followed(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="A1"), Reply(text="A2"), Reply(text="A1 again")))
    open_app(page)
    send(page, "Q1")
    wait_for_answers(page, 1)
    send(page, "Q2")
    wait_for_answers(page, 2)
    first_user = page.locator("li.message.user").first
    first_user.get_by_role("button", name="Edit and resend").click()
    first_user.get_by_role("textbox", name="Edit your message").fill("Q1 edited")
    first_user.get_by_role("button", name="Save & send").click()
    last_answer(page).get_by_text("A1 again").wait_for()
    wait_for_answers(page, 1)
    assert shown_texts(page) == ["Q1 edited", "A1 again"]
    history = stack.run(lambda: list(stack.upstream.history))
    assert user_messages_sent(history[-1]) == ["Q1 edited"]

    first_user = page.locator("li.message.user").first
    assert versions_label(first_user) == "2/2"
    first_user.get_by_role("button", name="Previous version").click()
    page.wait_for_function("() => document.querySelectorAll('li.message').length === 4")
    assert shown_texts(page) == ["Q1", "A1", "Q2", "A2"]


def test_retry_on_an_older_error_keeps_the_later_exchanges_as_a_branch(page, stack, watch):
    stack.run(
        lambda: stack.upstream.enqueue(Reply(status=500), Reply(text="Later answer"), Reply(text="Recovered"))
    )
    open_app(page)
    send(page, "First question")
    page.locator("li.message.assistant .message-problem.error").wait_for()
    send(page, "Later question")
    wait_for_answers(page, 2)
    assert "Later answer" in page.inner_text("#message-list")

    failed = page.locator("li.message.assistant").first
    failed.get_by_role("button", name="Retry").click()
    last_answer(page).get_by_text("Recovered").wait_for()
    wait_for_answers(page, 1)
    assert shown_texts(page) == ["First question", "Recovered"]
    history = stack.run(lambda: list(stack.upstream.history))
    assert user_messages_sent(history[-1]) == ["First question"]

    # Nothing was deleted: the failed answer and the exchange after it are the other version.
    answer = last_answer(page)
    assert versions_label(answer) == "2/2"
    answer.get_by_role("button", name="Previous version").click()
    page.locator("li.message", has_text="Later answer").wait_for()
    assert page.locator("li.message").count() == 4
    assert page.locator("li.message .message-problem.error").count() == 1
    page.reload()
    page.locator("li.message", has_text="Later answer").wait_for()


def test_a_conversation_stored_before_branches_loads_and_branches(page, stack):
    old = {
        "id": "c-old",
        "title": "Stored long ago",
        "titleSetByUser": False,
        "createdAt": 1_700_000_000_000,
        "updatedAt": 1_700_000_000_000,
        "systemPrompt": "",
        "model": None,
        "temperature": None,
        "markdown": True,
        "rlm": False,
        "messages": [
            {"id": "m-1", "role": "user", "content": "Old question", "createdAt": 1_700_000_000_000},
            {
                "id": "m-2",
                "role": "assistant",
                "content": "Old answer",
                "createdAt": 1_700_000_000_001,
                "state": "done",
            },
        ],
    }
    open_app(page)
    page.evaluate(
        "c => { localStorage.setItem('tinychat.conversation.' + c.id, JSON.stringify(c));"
        " localStorage.setItem('tinychat.lastConversation', c.id); }",
        old,
    )
    page.reload()
    page.locator("li.message", has_text="Old answer").wait_for()
    stack.run(lambda: stack.upstream.enqueue(Reply(text="New answer")))
    last_answer(page).get_by_role("button", name="Regenerate answer").click()
    last_answer(page).get_by_text("New answer").wait_for()
    wait_for_answers(page, 1)
    last_answer(page).get_by_role("button", name="Previous version").click()
    last_answer(page).get_by_text("Old answer").wait_for()


def test_exports_keep_every_branch_and_markdown_writes_the_shown_path(page, stack, tmp_path):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Answer one"), Reply(text="Answer two")))
    open_app(page)
    send(page, "Pick a fruit")
    wait_for_answers(page, 1)
    last_answer(page).get_by_role("button", name="Regenerate answer").click()
    last_answer(page).get_by_text("Answer two").wait_for()
    wait_for_answers(page, 1)

    with page.expect_download() as markdown_info:
        page.click("#export-all-md")
    markdown = markdown_info.value.path().read_text()
    assert "Answer two" in markdown and "Answer one" not in markdown
    assert "fake-model" in markdown and "default model" not in markdown

    with page.expect_download() as json_info:
        page.click("#export-all-json")
    path = tmp_path / "export.json"
    json_info.value.save_as(path)
    exported = json.loads(path.read_text())["conversations"][0]
    assert [m["content"] for m in exported["branches"]] == ["Answer one"]

    page.click("#clear-all")
    page.click("#dialog-ok")
    page.set_input_files("#import-file", str(path))
    page.locator(".conversation-link", has_text="Pick a fruit").click()
    last_answer(page).get_by_text("Answer two").wait_for()
    last_answer(page).get_by_role("button", name="Previous version").click()
    last_answer(page).get_by_text("Answer one").wait_for()
