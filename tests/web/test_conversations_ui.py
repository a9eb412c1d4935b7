"""Conversations in the browser's storage: reload, sidebar actions, search, export/import, full storage."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]


def sidebar_titles(page) -> list[str]:
    return page.locator(".conversation-item .conversation-title").all_inner_texts()


def make_two_chats(page, stack) -> None:
    stack.run(lambda: stack.upstream.enqueue(Reply(text="About apples"), Reply(text="About pears")))
    open_app(page)
    send(page, "Tell me about fruit")
    wait_for_answers(page, 1)
    page.click("#new-chat")
    send(page, "Second topic")
    wait_for_answers(page, 1)


def test_reload_restores_conversations_newest_first(page, stack):
    make_two_chats(page, stack)
    page.reload()
    page.wait_for_selector(".conversation-item")
    assert sidebar_titles(page) == ["Second topic", "Tell me about fruit"]
    assert "About pears" in page.inner_text("#message-list")
    page.locator(".conversation-link", has_text="Tell me about fruit").click()
    assert "About apples" in page.inner_text("#message-list")


def test_search_finds_titles_and_content(page, stack):
    make_two_chats(page, stack)
    page.fill("#search", "apples")
    assert sidebar_titles(page) == ["Tell me about fruit"]
    page.fill("#search", "second")
    assert sidebar_titles(page) == ["Second topic"]
    page.fill("#search", "nothing like this")
    assert sidebar_titles(page) == []
    assert page.locator("#list-empty").is_visible()


def test_rename_and_delete_with_confirmation(page, stack):
    make_two_chats(page, stack)
    first = page.locator(".conversation-item", has_text="Second topic")
    first.get_by_role("button", name="Rename conversation").click()
    page.fill("#dialog-input", "Renamed chat")
    page.click("#dialog-ok")
    assert sidebar_titles(page)[0] == "Renamed chat"
    renamed = page.locator(".conversation-item", has_text="Renamed chat")
    renamed.get_by_role("button", name="Delete conversation").click()
    page.click("#dialog-cancel")
    assert len(sidebar_titles(page)) == 2
    renamed.get_by_role("button", name="Delete conversation").click()
    page.click("#dialog-ok")
    assert sidebar_titles(page) == ["Tell me about fruit"]
    page.reload()
    page.wait_for_selector(".conversation-item")
    assert sidebar_titles(page) == ["Tell me about fruit"]


def test_export_then_import_round_trip(page, stack, tmp_path):
    make_two_chats(page, stack)
    with page.expect_download() as download_info:
        page.click("#export-all-json")
    path = tmp_path / "export.json"
    download_info.value.save_as(path)
    exported = json.loads(path.read_text())
    assert len(exported["conversations"]) == 2

    with page.expect_download() as markdown_info:
        page.click("#export-all-md")
    markdown = tmp_path / "export.md"
    markdown_info.value.save_as(markdown)
    assert "About apples" in markdown.read_text()

    page.click("#clear-all")
    page.click("#dialog-ok")
    assert sidebar_titles(page) == []
    page.set_input_files("#import-file", str(path))
    page.wait_for_function("() => document.querySelectorAll('.conversation-item').length === 2")
    assert sidebar_titles(page) == ["Second topic", "Tell me about fruit"]
    page.locator(".conversation-link", has_text="Tell me about fruit").click()
    assert "About apples" in page.inner_text("#message-list")

    # Importing the same file again adds nothing and overwrites nothing.
    page.set_input_files("#import-file", str(path))
    page.locator(".toast", has_text="2 already present").wait_for()
    assert len(sidebar_titles(page)) == 2


def test_import_keeps_a_changed_copy_instead_of_overwriting(page, stack, tmp_path):
    make_two_chats(page, stack)
    with page.expect_download() as download_info:
        page.click("#export-all-json")
    data = json.loads(download_info.value.path().read_text())
    changed = data["conversations"][0]
    changed["messages"][-1]["content"] = "A different ending"
    path = tmp_path / "changed.json"
    path.write_text(json.dumps({"conversations": [changed]}))
    page.set_input_files("#import-file", str(path))
    page.locator(".toast", has_text="copies").wait_for()
    titles = sidebar_titles(page)
    assert len(titles) == 3 and any(t.endswith("(imported)") for t in titles)


def test_invalid_import_is_rejected_with_a_reason(page, stack, tmp_path, watch):
    open_app(page)
    bad = tmp_path / "bad.json"
    hostile = {"title": "x", "messages": [{"role": "hacker", "content": 1}]}
    bad.write_text(json.dumps({"conversations": [hostile]}))
    page.set_input_files("#import-file", str(bad))
    toast = page.locator(".toast.error")
    toast.wait_for()
    assert "unknown role" in toast.inner_text()
    assert sidebar_titles(page) == []


def test_full_storage_is_reported_and_the_chat_stays_in_memory(page, stack):
    open_app(page)
    page.evaluate(
        """() => {
        let n = 0;
        for (const size of [512 * 1024, 16 * 1024, 256]) {
          const chunk = 'x'.repeat(size);
          try { for (;;) localStorage.setItem('filler' + n++, chunk); } catch {}
        }
        }"""
    )
    stack.run(lambda: stack.upstream.enqueue(Reply(text="still here " * 2000)))
    send(page, "a message that will not fit " * 20)
    wait_for_answers(page, 1)
    page.locator(".toast.error", has_text="storage is full").first.wait_for()
    assert "still here" in page.inner_text("#message-list")
    assert page.locator(".conversation-item").count() == 1
