"""/image progress and results, vision uploads, the RLM switch and trace, themes and mobile."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, wait_for_answers
from .stack import png_data_uri

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

IMAGE = png_data_uri(96, 64)
IMAGE_EVENTS = [
    {"status": "Generating image… 10%"},
    {"status": "Generating image… 40%"},
    {"status": "Generating image… 80%"},
    {"image": IMAGE, "prompt": "a red fox", "content": ""},
    {"done": True, "finish_reason": "stop", "usage": None},
]


def set_image_events(stack, events, delay=0.05):
    def apply() -> None:
        stack.downstream.image_events = events
        stack.downstream.event_delay = delay

    stack.run(apply)


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


def jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("no JPEG frame header")


def big_png(width: int, height: int) -> bytes:
    row = b"\x00" + bytes([30, 160, 200]) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_image_command_shows_progress_then_the_image(page, stack, tmp_path):
    set_image_events(stack, IMAGE_EVENTS, delay=0.3)
    open_app(page)
    send(page, "/image a red fox")
    progress = page.locator("li.message.streaming .message-status progress")
    progress.wait_for()
    assert 0 < float(progress.get_attribute("value")) < 100
    wait_for_answers(page, 1)
    figure = last_answer(page).locator("figure.message-image.generated")
    image = figure.locator("img")
    image.wait_for()
    assert image.get_attribute("src") == IMAGE
    # Smaller than the column: shown at its own size, never blown up.
    assert image.bounding_box()["width"] == pytest.approx(96, abs=1)

    image.click()
    overlay = page.locator("#image-overlay")
    assert overlay.is_visible()
    assert page.locator("#overlay-image").get_attribute("src") == IMAGE
    page.keyboard.press("Escape")
    assert not overlay.is_visible()

    with page.expect_download() as download_info:
        figure.get_by_role("button", name="Download image").click()
    download = download_info.value
    assert download.suggested_filename.startswith("a-red-fox")
    saved = tmp_path / "fox"
    download.save_as(saved)
    assert saved.read_bytes() == base64.b64decode(IMAGE.split(",", 1)[1])

    page.reload()
    restored = page.locator("figure.message-image.generated img")
    restored.wait_for()
    page.wait_for_function(
        "() => document.querySelector('figure.message-image.generated img').src.startsWith('data:')"
    )
    assert restored.get_attribute("src") == IMAGE


def test_a_stream_without_done_is_marked_cut_off_and_can_be_retried(page, stack):
    # The gateway itself always ends with `done`, so the cut is made on the browser's side of
    # it: the first answer is a stream that simply stops.
    cut = 'data: {"status": "Generating image… 10%"}\n\ndata: {"content": "partial"}\n\n'
    page.route(
        "**/api/chat/stream",
        lambda route: route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=cut),
    )
    set_image_events(stack, IMAGE_EVENTS)
    open_app(page)
    send(page, "/image a red fox")
    problem = last_answer(page).locator(".message-problem.cutoff")
    problem.wait_for()
    assert "cut off" in problem.inner_text()
    assert "partial" in last_answer(page).inner_text()
    page.unroute("**/api/chat/stream")
    problem.get_by_role("button", name="Retry").click()
    page.locator("figure.message-image.generated img[src^='data:']").wait_for()
    wait_for_answers(page, 1)
    assert page.locator(".message-problem").count() == 0
    assert "partial" not in last_answer(page).inner_text()
    assert [kind for kind, _ in stack.run(lambda: list(stack.downstream.requests))] == ["image"]


def test_a_service_that_dies_mid_stream_shows_an_error_with_retry(page, stack):
    set_image_events(stack, IMAGE_EVENTS[:2])
    open_app(page)
    send(page, "/image a red fox")
    problem = last_answer(page).locator(".message-problem.error")
    problem.wait_for()
    assert problem.get_by_role("button", name="Retry").is_visible()


def test_attached_image_is_downscaled_sent_and_kept(page, stack, tmp_path):
    picture = tmp_path / "wide.png"
    picture.write_bytes(big_png(3200, 1600))
    open_app(page)
    page.set_input_files("#attach-file", str(picture))
    page.locator("#attachment").wait_for()
    assert "1568×784" in page.inner_text("#attachment-name")
    page.get_by_role("button", name="Remove attached image").click()
    assert page.locator("#attachment").is_hidden()
    page.set_input_files("#attach-file", str(picture))
    page.locator("#attachment").wait_for()
    send(page, "What is in this picture?")
    wait_for_answers(page, 1)
    body = stack.run(lambda: stack.upstream.history[-1])
    parts = body["messages"][-1]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    assert url.startswith("data:image/jpeg;base64,")
    assert jpeg_size(base64.b64decode(url.split(",", 1)[1])) == (1568, 784)
    page.reload()
    page.wait_for_function(
        "() => document.querySelector('li.message.user figure img')?.src.startsWith('data:image/jpeg')"
    )


def test_small_image_is_sent_unchanged_by_paste(page, stack):
    small = base64.b64decode(png_data_uri(40, 30).split(",", 1)[1])
    open_app(page)
    page.evaluate(
        """(bytes) => {
        const file = new File([new Uint8Array(bytes)], 'shot.png', {type: 'image/png'});
        const data = new DataTransfer();
        data.items.add(file);
        const event = new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true});
        document.getElementById('composer-input').dispatchEvent(event);
    }""",
        list(small),
    )
    page.locator("#attachment").wait_for()
    send(page, "pasted")
    wait_for_answers(page, 1)
    body = stack.run(lambda: stack.upstream.history[-1])
    url = next(p["image_url"]["url"] for p in body["messages"][-1]["content"] if p["type"] == "image_url")
    assert png_size(base64.b64decode(url.split(",", 1)[1])) == (40, 30)


RLM_EVENTS = [
    {"status": "RLM iteration 1/20"},
    # The shape rlm-service sends (tinychat_rlm/engine.py): reasoning arrives as deltas.
    {"rlm": {"kind": "reasoning", "iteration": 1, "delta": "Let me look "}},
    {"rlm": {"kind": "reasoning", "iteration": 1, "delta": "at the context."}},
    {"rlm": {"kind": "reasoning", "iteration": 1, "done": True, "ms": 40, "finish_reason": "stop"}},
    {"rlm": {"kind": "code", "iteration": 1, "code": "print(len(context))"}},
    {"rlm": {"kind": "output", "iteration": 1, "stdout": "42", "stderr": "", "error": None, "ms": 12}},
    {"status": "RLM iteration 2/20"},
    {"content": "The context has **42** characters."},
    {"done": True, "finish_reason": "stop", "usage": {"total_tokens": 99}},
]


def test_rlm_needs_the_passcode_and_shows_its_trace(page, stack, watch):
    watch.allow_console("status of 40")  # the wrong passcode is answered 401/403
    stack.run(lambda: setattr(stack.downstream, "rlm_events", RLM_EVENTS))
    stack.run(lambda: setattr(stack.downstream, "event_delay", 0.25))
    open_app(page)
    toggle = page.locator("#rlm-toggle")
    assert page.locator("#rlm-toggle-wrap").is_visible()
    toggle.check()
    page.fill("#dialog-input", "wrong")
    page.click("#dialog-ok")
    page.locator("#dialog-error", has_text="not right").wait_for()
    page.fill("#dialog-input", "open-sesame")
    page.click("#dialog-ok")
    # The passcode is checked with the server before the dialog closes; until then the
    # page behind the modal dialog takes no input.
    page.locator("#dialog").wait_for(state="hidden")
    assert toggle.is_checked()

    send(page, "How long is this?")
    page.locator("li.message.streaming .badge", has_text="Iteration 1/20").wait_for()
    wait_for_answers(page, 1)
    kind, body = stack.run(lambda: stack.downstream.requests[-1])
    assert kind == "rlm" and body["rlm"] is True
    trace = last_answer(page).locator(".rlm-trace")
    assert trace.locator(".rlm-step").count() == 3
    assert last_answer(page).locator(".message-content strong").inner_text() == "42"
    assert page.locator("#rlm-explain").is_visible()
    assert "sandbox" in page.locator("#rlm-explain").inner_text()
    trace.locator(".rlm-summary").click()
    trace.locator(".rlm-step.kind-code summary").click()
    assert "print(len(context))" in trace.locator(".rlm-step.kind-code").inner_text()
    reasoning = trace.locator(".rlm-step.kind-reasoning")
    assert reasoning.is_visible()
    trace.get_by_role("button", name="Hide thinking").click()
    assert reasoning.is_hidden()
    assert trace.locator(".rlm-step.kind-output").is_visible()


def test_dark_theme_follows_the_system_and_the_toggle(browser, stack, artifacts):
    size = {"width": 1280, "height": 800}
    context = browser.new_context(base_url=stack.url, color_scheme="dark", viewport=size)
    try:
        page = context.new_page()
        answer = "Dark **mode** with `code` and $x^2$.\n\n```python\nprint('hi')\n```"
        stack.run(lambda: stack.upstream.enqueue(Reply(text=answer)))
        open_app(page)
        send(page, "Hello in the dark")
        wait_for_answers(page, 1)
        background = page.evaluate("getComputedStyle(document.querySelector('.main')).backgroundColor")
        assert background == "rgb(24, 25, 29)"
        page.screenshot(path=str(artifacts / "desktop-dark.png"))
        page.click("#theme-toggle")  # system -> light
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        background = page.evaluate("getComputedStyle(document.querySelector('.main')).backgroundColor")
        assert background == "rgb(255, 255, 255)"
        page.screenshot(path=str(artifacts / "desktop-light.png"))
        page.click("#theme-toggle")  # light -> dark, remembered
        page.reload()
        page.wait_for_selector("li.message")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}])
def test_mobile_layout_uses_a_drawer(page, stack, artifacts):
    answer = "A short answer with a table:\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    stack.run(lambda: stack.upstream.enqueue(Reply(text=answer)))
    open_app(page)
    assert page.locator("#sidebar").is_hidden()
    send(page, "Hello from a phone")
    wait_for_answers(page, 1)
    page.screenshot(path=str(artifacts / "mobile-chat.png"))
    page.click("#open-sidebar")
    assert page.locator("#sidebar").is_visible()
    assert page.locator(".conversation-item").count() == 1
    page.wait_for_timeout(300)  # the drawer slides in
    page.screenshot(path=str(artifacts / "mobile-drawer.png"))
    page.click("#close-sidebar")
    page.locator("#sidebar").wait_for(state="hidden")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 390
