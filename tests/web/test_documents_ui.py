"""Attached documents in a real browser: chips, IndexedDB, export/import, a normal chat's text
parts, and RLM jobs whose `context` is the documents — the REAL rlm-service (process sandbox)
behind the real gateway and chat-service; only the LLM is fake, scripted turn by turn."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rlm.harness import ScriptedLLM, repl

from .helpers import last_answer, open_app, send, wait_for_answers
from .stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PDF_SENTENCE = "Quarterly revenue grew by twelve percent"
BIG_NAME = "server.log"
BIG_BYTES = 5 * 1024 * 1024
PRINT_DOCUMENTS = "for doc in context:\n    print('DOC', doc.name, len(doc))"
FINISH = "FINAL('Documents: ' + ', '.join(doc.name for doc in context) + ' | ' + context[1][:40])"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Overrides the session stack for this module: here the gateway's RLM is the real one."""
    running = Stack(real_rlm=True).start()
    yield running
    running.stop()


def pdf_with_text(sentence: str) -> bytes:
    """A one-page PDF whose text layer says `sentence` (Helvetica, compressed content)."""
    content = zlib.compress(f"BT /F1 18 Tf 72 720 Td ({sentence}) Tj ET".encode())
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def big_log() -> str:
    line = "2026-12-01T20:00:00Z INFO request served in 12 ms\n"
    text = line * (BIG_BYTES // len(line))
    return text + "x" * (BIG_BYTES - len(text))


def chips(page, selector: str) -> list[str]:
    return page.locator(f"{selector} .document-chip").evaluate_all(
        "chips => chips.map(c => c.querySelector('.document-chip-name').textContent + ' · ' "
        "+ c.querySelector('.document-chip-size').textContent)"
    )


def attach_files(page, tmp_path: Path) -> None:
    log = tmp_path / BIG_NAME
    log.write_text(big_log())
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(pdf_with_text(PDF_SENTENCE))
    page.set_input_files("#attach-file", [str(log), str(pdf)])
    page.wait_for_function(
        "() => document.querySelectorAll('#document-tray .document-chip:not(.reading)').length === 2"
    )


def rlm_output(page) -> str:
    trace = last_answer(page).locator(".rlm-trace")
    trace.locator(".rlm-step.kind-output").first.wait_for(state="attached")
    return trace.locator(".rlm-step.kind-output").first.evaluate("step => step.textContent")


def test_documents_become_the_rlm_context_and_survive_reload_and_export_import(page, stack, tmp_path):
    turns = [repl(PRINT_DOCUMENTS), repl(FINISH), repl(PRINT_DOCUMENTS), repl("FINAL('again')")]
    stack.run(lambda: ScriptedLLM(stack.upstream, turns))
    open_app(page)
    attach_files(page, tmp_path)
    pdf_size = len(pdf_with_text(PDF_SENTENCE))
    assert chips(page, "#document-tray") == [f"{BIG_NAME} · 5.0 MB", f"report.pdf · {pdf_size} B"]
    page.locator("#rlm-toggle").check()
    send(page, "What documents do I have?")
    wait_for_answers(page, 1)

    # The job's context held both documents, by name, whole; the scripted model printed them.
    output = rlm_output(page)
    assert f"DOC {BIG_NAME} {BIG_BYTES}" in output
    assert "DOC report.pdf " in output
    answer = last_answer(page).locator(".message-content").inner_text()
    assert answer == f"Documents: {BIG_NAME}, report.pdf | {PDF_SENTENCE}"
    assert last_answer(page).locator(".rlm-trace .rlm-step.kind-final").count() == 1
    assert page.locator("#document-tray").is_hidden()
    sent = chips(page, "li.message.user .message-documents")
    assert [c.split(" · ")[0] for c in sent] == [BIG_NAME, "report.pdf"]

    page.reload()
    page.locator("li.message.user .message-documents .document-chip").first.wait_for()
    assert chips(page, "li.message.user .message-documents") == sent

    with page.expect_download() as download:
        page.click("#export-all-json")
    exported_path = tmp_path / "export.json"
    download.value.save_as(exported_path)
    exported = json.loads(exported_path.read_text())
    attachments = exported["conversations"][0]["messages"][0]["attachments"]
    assert [a["name"] for a in attachments] == [BIG_NAME, "report.pdf"]
    assert len(attachments[0]["text"]) == BIG_BYTES
    assert attachments[1]["text"].startswith(PDF_SENTENCE)

    page.click("#clear-all")
    page.click("#dialog-ok")
    page.set_input_files("#import-file", str(exported_path))
    page.locator(".toast", has_text="Import: 1 added").wait_for()
    page.locator(".conversation-link").first.click()
    page.locator("li.message.user .message-documents .document-chip").first.wait_for()
    assert chips(page, "li.message.user .message-documents") == sent

    # The imported texts are stored again: a new RLM question gets them as its context.
    page.locator("#rlm-toggle").check()
    send(page, "And now?")
    wait_for_answers(page, 2)
    assert f"DOC {BIG_NAME} {BIG_BYTES}" in rlm_output(page)
    assert last_answer(page).locator(".message-content").inner_text() == "again"


DROP_FILES = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "text/markdown"}));
  const zone = document.getElementById("main");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
  }
}"""

PASTE_FILE = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "text/csv"}));
  const input = document.getElementById("composer-input");
  const paste = new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true});
  input.dispatchEvent(paste);
}"""


def test_a_normal_chat_sends_documents_as_text_parts(page, stack):
    open_app(page)
    page.evaluate(DROP_FILES, ["notes.md", "# Notes\nTea at four."])
    page.evaluate(PASTE_FILE, ["table.csv", "a,b\n1,2\n"])
    page.wait_for_function("() => document.querySelectorAll('#document-tray .document-chip').length === 2")
    send(page, "Summarise these.")
    wait_for_answers(page, 1)
    body = stack.run(lambda: stack.upstream.history[-1])
    content = body["messages"][-1]["content"]
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
    assert '<document name="notes.md">\n# Notes\nTea at four.\n</document>' in text
    assert '<document name="table.csv">\na,b\n1,2\n\n</document>' in text
    assert text.endswith("Summarise these.")


def test_documents_too_big_for_a_normal_chat_are_refused_with_a_hint_to_use_rlm(page, stack, watch):
    open_app(page)
    page.evaluate(DROP_FILES, ["huge.md", "word " * 100_000])
    page.wait_for_function("() => document.querySelectorAll('#document-tray .document-chip').length === 1")
    send(page, "Summarise.")
    page.locator(".toast", has_text="Turn on RLM").wait_for()
    # Nothing was lost: the message and the document wait in the composer.
    assert page.input_value("#composer-input") == "Summarise."
    assert len(chips(page, "#document-tray")) == 1
    assert page.locator("li.message").count() == 0


TIMELINE_ROWS = """box => [...box.querySelectorAll('.rlm-timeline-row')].map(row => [
  row.querySelector('.rlm-timeline-label').textContent,
  row.querySelector('.rlm-timeline-tokens').textContent,
])"""


def test_the_trace_timeline_shows_turns_cells_and_sub_calls_and_copies_as_json(page, context, stack):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    turns = [repl("print(llm_query_batched(['a', 'b']))"), repl("FINAL('done')")]
    stack.run(lambda: ScriptedLLM(stack.upstream, turns, lambda prompt: prompt.upper()))
    open_app(page)
    page.locator("#rlm-toggle").check()
    send(page, "Fan out.")
    wait_for_answers(page, 1)
    timeline = last_answer(page).locator(".rlm-timeline")
    timeline.locator("summary").click()
    rows = timeline.evaluate(TIMELINE_ROWS)
    assert rows == [
        ["Model turn 1", "12 tok"],
        ["Sub-calls ×2", "24 tok"],
        ["Cell 1", ""],
        ["Model turn 2", "12 tok"],
        ["Cell 2", ""],
    ]
    assert "48 tokens" in timeline.locator("summary").inner_text()
    timeline.get_by_role("button", name="Copy trace as JSON").click()
    timeline.get_by_role("button", name="Copied").wait_for()
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert copied["format"] == "tinychat-rlm-trace" and copied["version"] == 1
    assert copied["answer"] == "done" and copied["usage"]["total_tokens"] == 48
    kinds = [s["kind"] for s in copied["steps"]]
    assert kinds == ["reasoning", "code", "subcall", "output", "reasoning", "code", "output", "final"]
    assert all("t" in s for s in copied["steps"] if s["kind"] != "code")
