"""Reading comfort: notifications that never cover the composer, pictures at the column's
width, "Jump to latest" while an answer grows out of sight, long messages collapsed."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, wait_for_answers
from .stack import png_data_uri

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


def overlaps(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_notifications_are_deduplicated_dismissible_announced_and_clear_of_the_composer(page, stack):
    open_app(page)
    page.evaluate("document.getElementById('export-all-md').click()")
    for _ in range(3):
        page.evaluate("document.getElementById('export-all-md').click()")
    toast = page.locator(".toast", has_text="nothing to export")
    toast.wait_for()
    assert toast.count() == 1
    assert toast.locator(".toast-count").inner_text() == "×4"
    assert toast.locator("xpath=..").get_attribute("aria-live") == "polite"
    box = toast.bounding_box()
    for covered in ("#composer", "#send", "#composer-input"):
        assert not overlaps(box, page.locator(covered).bounding_box()), covered
    toast.get_by_role("button", name="Dismiss notification").click()
    assert page.locator(".toast").count() == 0


def test_errors_are_announced_assertively(page, stack):
    open_app(page)
    page.set_input_files(
        "#import-file", files=[{"name": "x.json", "mimeType": "application/json", "buffer": b"{"}]
    )
    error = page.locator(".toast.error")
    error.wait_for()
    assert error.locator("xpath=..").get_attribute("role") == "alert"


def test_a_big_picture_takes_the_column_width_and_a_small_one_its_own_size(page, stack):
    big = png_data_uri(1600, 900)
    small = png_data_uri(200, 120)

    def events(picture: str) -> list[dict]:
        return [
            {"image": picture, "prompt": "a lighthouse", "content": ""},
            {"done": True, "finish_reason": "stop"},
        ]

    stack.run(lambda: setattr(stack.downstream, "image_events", events(big)))
    open_app(page)
    send(page, "/image a lighthouse")
    wait_for_answers(page, 1)
    image = last_answer(page).locator("figure.message-image.generated img[src^='data:']")
    image.wait_for()
    column = page.locator("#message-list").bounding_box()["width"]
    main = last_answer(page).locator(".message-main").bounding_box()["width"]
    width = image.bounding_box()["width"]
    assert width == pytest.approx(main, abs=3), (width, main, column)
    assert width > 0.9 * column - 50

    stack.run(lambda: setattr(stack.downstream, "image_events", events(small)))
    send(page, "/image a small one")
    wait_for_answers(page, 2)
    image = last_answer(page).locator("figure.message-image.generated img[src^='data:']")
    image.wait_for()
    assert image.bounding_box()["width"] == pytest.approx(200, abs=1)
    image.click()
    assert page.locator("#image-overlay").is_visible()
    page.keyboard.press("Escape")


def test_jump_to_latest_appears_while_an_answer_grows_out_of_sight(page, stack):
    lines = [f"line {i}\n\n" for i in range(400)]
    stack.run(lambda: stack.upstream.enqueue(Reply(chunks=lines, chunk_delay=0.03)))
    open_app(page)
    send(page, "A long answer please")
    page.locator("li.message.streaming").get_by_text("line 60", exact=False).wait_for()
    jump = page.get_by_role("button", name="Jump to latest")
    assert jump.is_hidden()
    page.locator("#messages").evaluate("el => el.scrollTo(0, 0)")
    page.mouse.wheel(0, -200)
    jump.wait_for()
    composer = page.locator("#composer").bounding_box()
    assert jump.bounding_box()["y"] + jump.bounding_box()["height"] <= composer["y"]
    jump.click()
    page.wait_for_function(
        "() => { const m = document.getElementById('messages');"
        " return m.scrollHeight - m.scrollTop - m.clientHeight < 100; }"
    )
    jump.wait_for(state="hidden")
    page.click("#stop")
    wait_for_answers(page, 1)


def test_a_long_pasted_message_is_collapsed_with_show_more(page, stack):
    open_app(page)
    text = "A very long paste. " * 5700  # about 108,000 characters
    page.locator("#composer-input").fill(text)
    page.press("#composer-input", "Enter")
    wait_for_answers(page, 1)
    message = page.locator("li.message.user")
    assert message.bounding_box()["height"] < 600
    more = message.get_by_role("button", name="Show more")
    assert more.get_attribute("aria-expanded") == "false"
    more.click()
    assert message.bounding_box()["height"] > 3000
    message.get_by_role("button", name="Show less").click()
    assert message.bounding_box()["height"] < 600
    assert len(page.locator("li.message.user .message-content").inner_text()) > 100_000
