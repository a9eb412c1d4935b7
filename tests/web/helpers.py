"""Small steps the browser tests share."""

from __future__ import annotations

ANSWER_DONE = "li.message.assistant:not(.streaming)"


def open_app(page) -> None:
    page.goto("/")
    page.wait_for_selector("#model-select option", state="attached")


def send(page, text: str) -> None:
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")


def wait_for_answers(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('li.message.assistant:not(.streaming)').length >= n "
        "&& !document.querySelector('li.message.streaming')",
        arg=count,
    )


def last_answer(page):
    return page.locator("li.message.assistant").last


def user_messages_sent(history_entry: dict) -> list[str]:
    return [m["content"] for m in history_entry["messages"] if m["role"] == "user"]
