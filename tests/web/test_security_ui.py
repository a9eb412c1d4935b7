"""Hostile text from the model, the user or a title never runs, loads or injects anything.
The page guard (conftest) also fails the test on any dialog, CSP violation or off-site request."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '<svg onload="alert(3)"><circle r=5 /></svg>',
    '<iframe src="javascript:alert(4)"></iframe>',
    "[click me](javascript:alert(5))",
    '<a href="javascript:alert(6)">link</a>',
    "![pic](https://attacker.invalid/pixel.png)",
    '<div style="position:fixed;inset:0" onclick="alert(7)">cover</div>',
    "$\\href{javascript:alert(8)}{math link}$",
    '<button data-action="regenerate">fake control</button>',
    "<style>body{display:none}</style>",
    '<form action="https://attacker.invalid"><input name=q></form>',
]
HOSTILE = "\n\n".join(PAYLOADS)

INJECTED = """() => {
  const found = [];
  const anywhere = ['script:not([src])', '[onerror]', '[onload]', '[onclick]', '[onmouseover]',
                    'a[href^="javascript"]', 'iframe', 'object', 'embed', 'body style'];
  const inRendered = ['img', 'button', 'form', 'input:not([type=checkbox])', 'svg:not(.katex svg)',
                      '[data-action]', '[style*=fixed]'];
  for (const sel of anywhere) if (document.querySelector(sel)) found.push(sel);
  for (const root of document.querySelectorAll('.message-content, .conversation-title, #chat-title')) {
    for (const sel of inRendered) if (root.querySelector(sel)) found.push(sel);
  }
  return found;
}"""


def assert_nothing_injected(page) -> None:
    assert page.evaluate(INJECTED) == []
    assert page.evaluate("window.getComputedStyle(document.body).display") != "none"


def test_xss_in_model_output_never_executes(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text=HOSTILE)))
    open_app(page)
    send(page, "say something nasty")
    wait_for_answers(page, 1)
    content = last_answer(page).locator(".message-content")
    text = content.inner_text()
    assert "<img src=x onerror=alert(1)>" in text  # raw HTML is shown as text
    assert content.locator("a", has_text="click me").get_attribute("href") is None
    assert content.locator("button").count() == 0
    assert_nothing_injected(page)
    # A click on what looks like a control inside the answer does nothing.
    content.get_by_text("fake control", exact=False).click()
    page.wait_for_timeout(200)
    assert page.locator("li.message.assistant").count() == 1
    assert len(stack.run(lambda: list(stack.upstream.history))) == 1


def test_xss_in_a_user_message_is_shown_as_text(page, stack):
    open_app(page)
    send(page, HOSTILE)
    wait_for_answers(page, 1)
    user = page.locator("li.message.user .message-content")
    assert user.inner_text() == HOSTILE
    assert_nothing_injected(page)
    page.reload()
    page.wait_for_selector("li.message.user")
    assert page.locator("li.message.user .message-content").inner_text() == HOSTILE
    assert_nothing_injected(page)


def test_xss_in_a_conversation_title_is_shown_as_text(page, stack):
    open_app(page)
    send(page, "harmless")
    wait_for_answers(page, 1)
    page.locator(".conversation-item").first.get_by_role("button", name="Rename conversation").click()
    title = '<img src=x onerror=alert("title")><script>alert(9)</script>'
    page.fill("#dialog-input", title)
    page.click("#dialog-ok")
    item_title = page.locator(".conversation-item .conversation-title").first
    assert item_title.inner_text() == title
    assert page.locator("#chat-title").inner_text() == title
    page.reload()
    page.wait_for_selector(".conversation-item")
    assert page.locator(".conversation-item .conversation-title").first.inner_text() == title
    assert_nothing_injected(page)


def test_pages_are_served_with_a_strict_script_policy(page, stack):
    response = page.goto("/")
    policy = response.headers["content-security-policy"]
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    html = page.content()
    assert " onclick=" not in html and " onload=" not in html
    assert page.locator("script:not([src])").count() == 0
