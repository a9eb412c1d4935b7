"""The chat itself in a real browser: streaming, rendering, actions, keyboard."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, user_messages_sent, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

RICH_ANSWER = """## Results

| item | price |
|------|-------|
| tea  | 3 |

- [x] done task
- [ ] open task

See [the docs](https://example.com/docs).

```python
def greet(name):
    return f"hi {name}"
```

Euler: $e^{i\\pi} + 1 = 0$ and \\(a^2\\).

$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$

It costs $5 and $10 today.

Run `echo $HOME` to see it.
"""


def test_answer_streams_in_piece_by_piece(page, stack):
    words = [f"word{i} " for i in range(40)]
    stack.run(lambda: stack.upstream.enqueue(Reply(chunks=words, chunk_delay=0.05)))
    open_app(page)
    send(page, "Count for me")
    streaming = page.locator("li.message.assistant.streaming .message-content")
    streaming.get_by_text("word3", exact=False).wait_for()
    partial = streaming.inner_text()
    assert "word39" not in partial
    wait_for_answers(page, 1)
    assert "word39" in last_answer(page).inner_text()
    assert page.locator("#send").is_visible()


def test_markdown_code_and_math_render_as_elements(page, stack):
    pieces = [RICH_ANSWER[i : i + 7] for i in range(0, len(RICH_ANSWER), 7)]
    stack.run(lambda: stack.upstream.enqueue(Reply(chunks=pieces)))
    open_app(page)
    send(page, "Show me everything")
    wait_for_answers(page, 1)
    content = last_answer(page).locator(".message-content")
    assert content.locator("h2").inner_text() == "Results"
    assert content.locator("table td").first.inner_text() == "tea"
    assert content.locator("input[type=checkbox][disabled]").count() == 2
    link = content.locator("a", has_text="the docs")
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert content.locator("pre code .hljs-keyword").first.inner_text() == "def"
    assert content.locator(".code-lang").inner_text().lower() == "python"
    assert content.locator(".code-copy").is_visible()
    assert content.locator(".math-inline .katex").count() == 2
    assert content.locator(".math-display .katex-display").count() == 1


def test_prices_and_shell_variables_are_not_math(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text=RICH_ANSWER)))
    open_app(page)
    send(page, "prices")
    wait_for_answers(page, 1)
    content = last_answer(page).locator(".message-content")
    price = content.locator("p", has_text="It costs")
    assert price.inner_text() == "It costs $5 and $10 today."
    assert price.locator(".katex").count() == 0
    assert content.locator("code", has_text="echo $HOME").count() == 1
    assert content.locator("code .katex").count() == 0


def test_code_block_copy_button_copies_the_code(page, context, stack):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    stack.run(lambda: stack.upstream.enqueue(Reply(text="```js\nconsole.log(1)\n```")))
    open_app(page)
    send(page, "code please")
    wait_for_answers(page, 1)
    button = last_answer(page).locator(".code-copy")
    button.click()
    # The label changes once the asynchronous clipboard write has resolved, not on click.
    last_answer(page).locator(".code-copy", has_text="Copied").wait_for(timeout=5_000)
    assert page.evaluate("navigator.clipboard.readText()") == "console.log(1)"


def test_stop_button_cancels_the_upstream_request(page, stack):
    slow = Reply(chunks=[f"tick{i} " for i in range(200)], chunk_delay=0.1)
    stack.run(lambda: stack.upstream.enqueue(slow))
    open_app(page)
    send(page, "Talk slowly")
    page.locator("li.message.streaming").get_by_text("tick1", exact=False).wait_for()
    page.click("#stop")
    assert stack.wait_for_disconnect(), "the fake upstream never saw the client go away"
    wait_for_answers(page, 1)
    assert last_answer(page).locator(".message-problem.stopped").is_visible()
    assert "tick199" not in last_answer(page).inner_text()


def test_escape_stops_the_answer(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(chunks=[f"t{i} " for i in range(200)], chunk_delay=0.1)))
    open_app(page)
    send(page, "Talk slowly")
    page.locator("li.message.streaming").get_by_text("t1", exact=False).wait_for()
    page.keyboard.press("Escape")
    assert stack.wait_for_disconnect()
    wait_for_answers(page, 1)


def test_regenerate_replaces_the_last_answer(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="First answer"), Reply(text="Second answer")))
    open_app(page)
    send(page, "Question")
    wait_for_answers(page, 1)
    last_answer(page).get_by_role("button", name="Regenerate answer").click()
    page.wait_for_function("() => document.body.innerText.includes('Second answer')")
    wait_for_answers(page, 1)
    assert page.locator("li.message.assistant").count() == 1
    assert "First answer" not in page.inner_text("#message-list")
    history = stack.run(lambda: list(stack.upstream.history))
    assert [user_messages_sent(h) for h in history] == [["Question"], ["Question"]]


def test_edit_resends_from_the_edited_message(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="A1"), Reply(text="A2"), Reply(text="A1 again")))
    open_app(page)
    send(page, "Q1")
    wait_for_answers(page, 1)
    send(page, "Q2")
    wait_for_answers(page, 2)
    first_user = page.locator("li.message.user").first
    first_user.get_by_role("button", name="Edit and resend").click()
    editor = first_user.get_by_role("textbox", name="Edit your message")
    editor.fill("Q1 edited")
    first_user.get_by_role("button", name="Save & send").click()
    page.wait_for_function("() => document.body.innerText.includes('A1 again')")
    wait_for_answers(page, 1)
    texts = page.locator("li.message .message-content").all_inner_texts()
    assert texts == ["Q1 edited", "A1 again"]
    history = stack.run(lambda: list(stack.upstream.history))
    assert user_messages_sent(history[-1]) == ["Q1 edited"]


def test_upstream_error_is_shown_and_retry_works(page, stack, watch):
    stack.run(lambda: stack.upstream.enqueue(Reply(status=500), Reply(text="Recovered")))
    open_app(page)
    send(page, "Hello")
    problem = last_answer(page).locator(".message-problem.error")
    problem.wait_for()
    assert "sk-test-secret" not in problem.inner_text()
    problem.get_by_role("button", name="Retry").click()
    page.wait_for_function("() => document.body.innerText.includes('Recovered')")
    wait_for_answers(page, 1)
    assert page.locator(".message-problem").count() == 0


def test_temperature_zero_and_system_prompt_are_sent(page, stack):
    open_app(page)
    page.click("#open-settings")
    page.fill("#system-prompt", "Answer in French.")
    page.locator("#system-prompt").blur()
    page.locator("#temperature").fill("0")
    page.locator("#temperature").dispatch_event("change")
    page.select_option("#model-select", "fake-vision")
    send(page, "Bonjour")
    wait_for_answers(page, 1)
    body = stack.run(lambda: stack.upstream.history[-1])
    assert body["temperature"] == 0
    assert body["model"] == "fake-vision"
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}


def test_markdown_can_be_switched_off_per_conversation(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="**bold** and $x$")))
    open_app(page)
    send(page, "hi")
    wait_for_answers(page, 1)
    assert last_answer(page).locator("strong").count() == 1
    page.click("#open-settings")
    page.uncheck("#markdown-toggle")
    assert last_answer(page).locator(".plain-text").inner_text() == "**bold** and $x$"
    assert last_answer(page).locator("strong").count() == 0


def test_enter_sends_shift_enter_breaks_line_and_ime_never_sends(page, stack):
    open_app(page)
    box = page.locator("#composer-input")
    box.click()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert box.input_value() == "line one\nline two"
    # An Enter that ends an IME composition must not send.
    sent = page.evaluate(
        """() => {
        const box = document.getElementById('composer-input');
        const event = new KeyboardEvent('keydown',
            {key: 'Enter', isComposing: true, bubbles: true, cancelable: true});
        box.dispatchEvent(event);
        return document.querySelectorAll('li.message').length;
    }"""
    )
    assert sent == 0
    page.keyboard.press("Enter")
    wait_for_answers(page, 1)
    assert page.locator("li.message.user .message-content").inner_text() == "line one\nline two"


def test_ctrl_k_starts_a_new_chat(page, stack):
    open_app(page)
    send(page, "first chat")
    wait_for_answers(page, 1)
    page.keyboard.press("Control+k")
    assert page.locator("li.message").count() == 0
    assert page.locator("#empty-state").is_visible()
    assert page.evaluate("document.activeElement.id") == "composer-input"
