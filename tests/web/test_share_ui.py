"""Share links: the conversation travels in the URL fragment (compressed, optionally
encrypted), opens read-only in a browser with no storage, never reaches the server, and can
be saved as a copy; a link too long for browsers is refused with the reason."""

from __future__ import annotations

import random
import string

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

SECRET_QUESTION = "Which tea suits a rainy afternoon in Porto"
SECRET_ANSWER = "A smoky lapsang souchong suits it best"


def make_link(page, passphrase: str = "") -> str:
    page.click("#export-one")
    page.get_by_role("menuitem", name="Copy share link…").click()
    if passphrase:
        page.fill("#share-passphrase", passphrase)
    page.click("#share-create")
    page.wait_for_function("() => document.getElementById('share-link').value.includes('#share=')")
    link = page.input_value("#share-link")
    page.click("#share-close")
    return link


def fresh_page(browser, stack, watch):
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.on("pageerror", lambda e: watch.page_errors.append(str(e)))
    return context, page


def test_a_share_link_opens_read_only_elsewhere_and_the_server_never_sees_it(
    page, context, browser, stack, watch
):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    stack.run(lambda: stack.upstream.enqueue(Reply(text=SECRET_ANSWER)))
    open_app(page)
    send(page, SECRET_QUESTION)
    wait_for_answers(page, 1)
    link = make_link(page)
    assert "#share=z." in link
    assert SECRET_QUESTION not in link and "lapsang" not in link  # compressed, not plain
    assert page.evaluate("navigator.clipboard.readText()") == link
    stack.run(stack.access_log.clear)

    other_context, other = fresh_page(browser, stack, watch)
    try:
        other.goto(link)
        other.locator("li.message", has_text=SECRET_ANSWER).wait_for()
        assert SECRET_QUESTION in other.inner_text("#message-list")
        assert other.locator("#shared-banner").is_visible()
        assert other.locator("#composer").is_hidden()
        assert other.get_by_role("button", name="Regenerate answer").count() == 0
        assert other.evaluate("localStorage.length") == 0
        lines = stack.run(lambda: list(stack.access_log))
        assert any(line.startswith("GET / ") for line in lines), lines
        for line in lines:
            for word in ("tea", "Porto", "lapsang", "share="):
                assert word not in line, line

        other.get_by_role("button", name="Save a copy").click()
        other.locator(".conversation-item", has_text=SECRET_QUESTION).wait_for()
        assert other.locator("#composer").is_visible()
        assert "#share" not in other.url
        other.locator("li.message", has_text=SECRET_ANSWER).wait_for()
    finally:
        other_context.close()


def test_an_encrypted_link_needs_its_passphrase(page, context, browser, stack, watch):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    stack.run(lambda: stack.upstream.enqueue(Reply(text=SECRET_ANSWER)))
    open_app(page)
    send(page, SECRET_QUESTION)
    wait_for_answers(page, 1)
    link = make_link(page, passphrase="correct horse")
    assert "#share=e." in link

    other_context, other = fresh_page(browser, stack, watch)
    try:
        other.goto(link)
        other.locator("#dialog-input").fill("wrong guess")
        other.click("#dialog-ok")
        other.locator("#dialog-error", has_text="does not open").wait_for()
        other.locator("#dialog-input").fill("correct horse")
        other.click("#dialog-ok")
        other.locator("li.message", has_text=SECRET_ANSWER).wait_for()
    finally:
        other_context.close()


def test_a_link_too_long_for_browsers_is_refused_with_the_reason(page, stack):
    noise = "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=1_300_000))
    open_app(page)
    page.evaluate(
        """noise => {
        const c = {id: 'c-big', title: 'Huge', titleSetByUser: false, createdAt: 1, updatedAt: 1,
          systemPrompt: '', model: null, temperature: null, markdown: false, rlm: false,
          messages: [{id: 'm1', role: 'user', content: 'dump', createdAt: 1},
                     {id: 'm2', role: 'assistant', content: noise, createdAt: 2, state: 'done'}]};
        localStorage.setItem('tinychat.conversation.c-big', JSON.stringify(c));
        localStorage.setItem('tinychat.lastConversation', 'c-big');
    }""",
        noise,
    )
    page.reload()
    page.wait_for_selector("li.message.assistant")
    page.click("#export-one")
    page.get_by_role("menuitem", name="Copy share link…").click()
    page.click("#share-create")
    error = page.locator("#share-error")
    error.get_by_text("browsers reliably open links of up to 1,000,000").wait_for()
    assert "export it as a file" in error.inner_text()
    assert page.input_value("#share-link") == ""


def test_pictures_travel_in_the_link_only_when_asked(page, context, browser, stack, watch):
    from .stack import png_data_uri

    context.grant_permissions(["clipboard-read", "clipboard-write"])
    picture = png_data_uri(120, 80)
    events = [
        {"image": picture, "prompt": "a teapot", "content": ""},
        {"done": True, "finish_reason": "stop"},
    ]
    stack.run(lambda: setattr(stack.downstream, "image_events", events))
    open_app(page)
    send(page, "/image a teapot")
    wait_for_answers(page, 1)
    page.locator("figure.message-image img[src^='data:']").wait_for()
    without = make_link(page)
    page.click("#export-one")
    page.get_by_role("menuitem", name="Copy share link…").click()
    page.check("#share-pictures")
    page.click("#share-create")
    page.wait_for_function("() => document.getElementById('share-link').value.includes('#share=')")
    with_pictures = page.input_value("#share-link")
    page.click("#share-close")
    assert len(with_pictures) > len(without) + 100

    other_context, other = fresh_page(browser, stack, watch)
    try:
        other.goto(with_pictures)
        image = other.locator("figure.message-image.generated img")
        image.wait_for()
        other.wait_for_function(
            "src => document.querySelector('figure.message-image.generated img').src === src", arg=picture
        )
        plain = other_context.new_page()
        plain.goto(without)
        plain.locator("li.message.assistant").wait_for()
        assert plain.locator("figure.message-image img[src^='data:']").count() == 0
    finally:
        other_context.close()
