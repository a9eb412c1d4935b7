"""Several answers at once: each conversation streams on its own, Stop and Esc act on the one
in view, the sidebar marks the ones answering, and tabs see (and never overwrite) each other's
conversations."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def slow(prefix: str) -> Reply:
    return Reply(chunks=[f"{prefix}{i} " for i in range(300)], chunk_delay=0.1)


def open_conversation(page, title: str) -> None:
    page.locator(".conversation-link", has_text=title).click()
    page.wait_for_function("t => document.getElementById('chat-title').textContent === t", arg=title)


GROWS = "n => document.querySelector('li.message.streaming .message-content').innerText.length > n"


def answering_titles(page) -> list[str]:
    return page.locator(".conversation-item.answering .conversation-title").all_inner_texts()


def test_two_conversations_stream_at_once_and_each_stops_on_its_own(page, stack):
    stack.run(lambda: stack.upstream.enqueue(slow("alpha"), slow("beta")))
    disconnects_before = stack.run(lambda: stack.upstream.disconnects)
    open_app(page)
    send(page, "Chat A")
    page.locator("li.message.streaming").get_by_text("alpha2", exact=False).wait_for()
    page.click("#new-chat")
    assert page.locator("#send").is_visible(), "a new chat must not show chat A's Stop button"
    send(page, "Chat B")
    page.locator("li.message.streaming").get_by_text("beta2", exact=False).wait_for()
    assert sorted(answering_titles(page)) == ["Chat A", "Chat B"]
    assert len(stack.run(lambda: list(stack.upstream.history))) == 2

    # Stop in B stops B only.
    page.click("#stop")
    page.locator("li.message.assistant .message-problem.stopped").wait_for()
    assert page.locator("#send").is_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.conversation-item.answering')].length === 1"
    )
    assert answering_titles(page) == ["Chat A"]
    assert stack.wait_for_disconnect(), "B's request was never cancelled upstream"
    assert stack.run(lambda: stack.upstream.disconnects) - disconnects_before == 1, "A was cancelled too"

    # A kept streaming meanwhile; Esc in A stops A.
    open_conversation(page, "Chat A")
    streaming = page.locator("li.message.streaming .message-content")
    before = len(streaming.inner_text())
    page.wait_for_function(GROWS, arg=before)
    assert page.locator("#stop").is_visible()
    page.keyboard.press("Escape")
    wait_for_answers(page, 1)
    page.locator("li.message.assistant .message-problem.stopped").wait_for()
    page.wait_for_function("() => !document.querySelector('.conversation-item.answering')")
    assert page.locator("#send").is_visible()


def test_escape_in_another_chat_does_not_stop_an_answer(page, stack):
    stack.run(lambda: stack.upstream.enqueue(slow("tick")))
    open_app(page)
    send(page, "Long one")
    page.locator("li.message.streaming").get_by_text("tick2", exact=False).wait_for()
    page.click("#new-chat")
    page.keyboard.press("Escape")
    open_conversation(page, "Long one")
    streaming = page.locator("li.message.streaming .message-content")
    before = len(streaming.inner_text())
    page.wait_for_function(GROWS, arg=before)
    page.click("#stop")
    wait_for_answers(page, 1)


def test_a_second_tab_sees_new_chats_without_reloading(page, context, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Seen everywhere")))
    open_app(page)
    other = context.new_page()
    open_app(other)
    send(page, "Made in tab one")
    wait_for_answers(page, 1)
    other.locator(".conversation-link", has_text="Made in tab one").click()
    other.locator("li.message", has_text="Seen everywhere").wait_for()
    other.close()


def test_two_tabs_writing_one_conversation_keep_both_messages(page, context, stack):
    stack.run(
        lambda: stack.upstream.enqueue(
            Reply(text="First answer"),
            Reply(chunks=[f"one{i} " for i in range(20)], chunk_delay=0.05),
            Reply(chunks=[f"two{i} " for i in range(20)], chunk_delay=0.05),
        )
    )
    open_app(page)
    send(page, "Shared chat")
    wait_for_answers(page, 1)
    other = context.new_page()
    open_app(other)
    other.wait_for_selector("li.message")
    # Both tabs write at almost the same moment, each into the same conversation.
    send(page, "From tab one")
    send(other, "From tab two")
    stored = """() => Object.keys(localStorage).filter(k => k.startsWith('tinychat.conversation.'))
        .map(k => JSON.parse(localStorage.getItem(k)))
        .flatMap(c => [...c.messages, ...c.branches])
        .map(m => m.content + '|' + (m.state || ''))"""
    page.wait_for_function(
        f"() => {{ const all = ({stored})().join('\\n');"
        " return all.includes('one19 |done') && all.includes('two19 |done'); }",
        timeout=30_000,
    )
    other.close()
    contents = " ".join(page.evaluate(stored))
    for expected in ("Shared chat", "First answer", "From tab one", "one19", "From tab two", "two19"):
        assert expected in contents
    # Whichever way the writes interleaved, each shows: on the path or as a version.
    page.reload()
    page.wait_for_selector("li.message")
    shown = page.inner_text("#message-list")
    if "two19" not in shown:
        page.locator("li.message.user", has_text="From tab one").locator(".versions button:enabled").click()
        page.locator("li.message", has_text="two19").wait_for()
