"""The phone layout: a drawer that keeps the focus, a header with new chat and the model, and
a title that is never cut to "New …"."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

LONG_TITLE = "Plan a three day trip to Lisbon with museums"

FITS = """el => {
  const probe = document.createElement('span');
  probe.style.font = getComputedStyle(el).font;
  probe.style.position = 'absolute';
  probe.style.whiteSpace = 'nowrap';
  probe.textContent = el.options[el.selectedIndex].text;
  document.body.append(probe);
  const needed = probe.getBoundingClientRect().width;
  probe.remove();
  return needed <= el.clientWidth - 20;
}"""


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 390, "height": 844}


def test_the_drawer_keeps_the_focus_and_esc_closes_it(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Hi")))
    open_app(page)
    send(page, "One chat")
    wait_for_answers(page, 1)
    page.click("#open-sidebar")
    page.locator("#sidebar").wait_for()
    assert page.evaluate("document.getElementById('main').inert")
    for _ in range(25):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('sidebar').contains(document.activeElement)")
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.getElementById('sidebar').contains(document.activeElement)")
    page.keyboard.press("Escape")
    page.locator("#sidebar").wait_for(state="hidden")
    assert not page.evaluate("document.getElementById('main').inert")
    assert page.evaluate("document.activeElement.id") == "open-sidebar"


def test_the_header_has_new_chat_the_whole_model_and_the_whole_title(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Sure")))
    open_app(page)
    send(page, LONG_TITLE)
    wait_for_answers(page, 1)
    title = page.locator("#chat-title")
    assert title.inner_text() == LONG_TITLE
    assert page.evaluate(
        "el => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight + 1",
        title.element_handle(),
    )
    assert page.locator("#model-select").evaluate(FITS)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    new_chat = page.get_by_role("button", name="New chat", exact=True)
    assert new_chat.is_visible()
    new_chat.click()
    assert page.locator("li.message").count() == 0
    assert page.locator("#chat-title").inner_text() == "New chat"
