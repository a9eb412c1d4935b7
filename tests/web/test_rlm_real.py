"""The RLM trace in a real browser, fed by the REAL rlm-service (process sandbox) behind the
real gateway and chat-service; only the LLM is fake, scripted turn by turn."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from tinychat_rlm.codeblocks import STOP

from tests.fakes.openai_upstream import Reply
from tests.rlm.harness import ScriptedLLM, repl

from .helpers import last_answer, open_app, send, wait_for_answers
from .stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

QUESTION = "What do my notes say about tea?"
FIRST_CODE = """
print("context chars:", len(context))
gist = llm_query("Give the gist of: " + context)
print("sub-model says:", gist)
"""
SECOND_CODE = 'FINAL("Your notes mention **green tea** twice.")'
SUBCALL_ANSWER = "a question about tea"
PIECE_CHARS = 9


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Overrides the session stack for this module: here the gateway's RLM is the real one."""
    running = Stack(real_rlm=True).start()
    yield running
    running.stop()


def as_streamed(turn: str) -> tuple[str, Reply]:
    """A root-model turn as a real API streams it: cut at rlm-service's stop sequence (which
    the API strips) and sent in small pieces a little apart, so rlm-service emits many
    reasoning deltas. Returns the text the user should finally see, and the reply."""
    text = turn.split(STOP[0], 1)[0]
    pieces = [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]
    return text, Reply(chunks=pieces, chunk_delay=0.03)


TRACE_SNAPSHOT = """trace => [...trace.querySelectorAll('.rlm-step')].map(step => ({
  kind: [...step.classList].find(c => c.startsWith('kind-')).slice(5),
  title: step.querySelector('.rlm-kind').textContent,
  body: step.querySelector('.rlm-body').textContent,
  visible: step.checkVisibility(),
}))"""

STORED_TRACE = """() => {
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key.startsWith('tinychat.conversation.')) continue;
    const answer = JSON.parse(localStorage.getItem(key)).messages.find(m => m.role === 'assistant');
    if (answer) return answer.rlm;
  }
  return null;
}"""


# Records what the page received and showed, without polling: a copy of every chat stream's
# raw bytes (Chromium keeps no body of a streamed response for Playwright to read; the app
# reads its own branch of the tee), and every distinct status badge as it appears.
OBSERVE_PAGE = """
window.badgesSeen = [];
new MutationObserver(() => {
  for (const badge of document.querySelectorAll('li.message.streaming .badge')) {
    if (window.badgesSeen.at(-1) !== badge.textContent) window.badgesSeen.push(badge.textContent);
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
const realFetch = window.fetch.bind(window);
window.tappedStreams = [];
window.fetch = async (...args) => {
  const response = await realFetch(...args);
  if (!String(args[0]).includes('/api/chat/stream') || !response.body) return response;
  const [forApp, forTest] = response.body.tee();
  const tap = {text: ''};
  window.tappedStreams.push(tap);
  forTest.pipeThrough(new TextDecoderStream()).pipeTo(new WritableStream({write(c) { tap.text += c; }}));
  const {status, statusText, headers} = response;
  return new Response(forApp, {status, statusText, headers});
};
"""


def reasoning_deltas(sse_text: str) -> dict[int, int]:
    """How many reasoning deltas per iteration the server sent in one SSE body."""
    counts: dict[int, int] = {}
    for line in sse_text.splitlines():
        if not line.startswith("data: "):
            continue
        step = json.loads(line[6:]).get("rlm")
        if step and step["kind"] == "reasoning" and "delta" in step:
            counts[step["iteration"]] = counts.get(step["iteration"], 0) + 1
    return counts


def test_real_rlm_trace_merges_reasoning_and_survives_a_reload(page, stack, artifacts):
    first_text, first = as_streamed(repl(FIRST_CODE, before="I will measure the notes, then ask a helper."))
    second_text, second = as_streamed(repl(SECOND_CODE, before="That is enough to answer."))
    llm = stack.run(lambda: ScriptedLLM(stack.upstream, [first, second], lambda prompt: SUBCALL_ANSWER))

    page.add_init_script(OBSERVE_PAGE)
    open_app(page)
    page.locator("#rlm-toggle").check()  # no passcode on this stack: no dialog
    send(page, QUESTION)
    wait_for_answers(page, 1)
    assert page.evaluate("window.badgesSeen") == ["Iteration 1/6", "Iteration 2/6"]

    # The server really streamed each turn's reasoning as many deltas…
    deltas = reasoning_deltas(page.evaluate("window.tappedStreams[0].text"))
    assert deltas.get(1, 0) > 1 and deltas.get(2, 0) > 1, deltas
    assert len(stack.run(lambda: llm.subcall_prompts)) == 1

    # …and the trace shows each turn as ONE reasoning step holding the whole text, folded
    # into one summary line; the answer is in view without opening it.
    trace = last_answer(page).locator(".rlm-trace")
    summary = trace.locator(".rlm-summary")
    assert re.fullmatch(r"Worked for \d+\.\d s · 2 steps · 1 sub-call", summary.inner_text()), (
        summary.inner_text()
    )
    assert trace.locator(".rlm-steps").is_hidden()
    assert last_answer(page).locator(".message-content strong").is_visible()
    summary.click()
    steps = trace.evaluate(TRACE_SNAPSHOT)
    kinds = [s["kind"] for s in steps]
    assert kinds == ["reasoning", "code", "subcall", "output", "reasoning", "code", "output", "final"]
    reasoning = [s for s in steps if s["kind"] == "reasoning"]
    assert [s["title"] for s in reasoning] == ["Iteration 1 · Reasoning", "Iteration 2 · Reasoning"]
    assert [s["body"] for s in reasoning] == [first_text, second_text]
    code_one, code_two = (s for s in steps if s["kind"] == "code")
    assert 'gist = llm_query("Give the gist of: " + context)' in code_one["body"]
    assert SECOND_CODE in code_two["body"]
    output = next(s for s in steps if s["kind"] == "output")
    assert f"context chars: {len(QUESTION)}\nsub-model says: {SUBCALL_ANSWER}" in output["body"]
    subcall = next(s for s in steps if s["kind"] == "subcall")
    assert subcall["title"] == "Iteration 1 · Sub-call"
    assert f"Give the gist of: {QUESTION}" in subcall["body"] and SUBCALL_ANSWER in subcall["body"]
    final = steps[-1]
    assert final["title"] == "Final answer" and "after 2 iterations" in final["body"]
    assert last_answer(page).locator(".message-content strong").inner_text() == "green tea"
    assert last_answer(page).locator(".message-status").count() == 0  # the badge left with the stream

    # The stored trace is compact: merged steps, never the deltas.
    stored = page.evaluate(STORED_TRACE)
    assert [s["kind"] for s in stored] == kinds
    assert all("delta" not in s for s in stored)
    assert [s["text"] for s in stored if s["kind"] == "reasoning"] == [first_text, second_text]

    # Opening a step shows its content.
    first_output = trace.locator(".rlm-step.kind-output").first
    first_output.locator("summary").click()
    assert SUBCALL_ANSWER in first_output.locator(".rlm-pre.output").inner_text()

    # Hide thinking hides exactly the reasoning steps.
    trace.get_by_role("button", name="Hide thinking").click()
    hidden = trace.evaluate(TRACE_SNAPSHOT)
    assert [s["visible"] for s in hidden] == [s["kind"] != "reasoning" for s in hidden]

    # After a reload the same trace comes back, thinking still hidden; showing it works again.
    page.reload()
    page.locator("li.message.assistant .rlm-trace").wait_for()
    restored = last_answer(page).locator(".rlm-trace")
    restored.locator(".rlm-summary").click()
    assert restored.evaluate(TRACE_SNAPSHOT) == hidden
    restored.get_by_role("button", name="Show thinking").click()
    assert restored.evaluate(TRACE_SNAPSHOT) == [{**s, "visible": True} for s in hidden]
    assert last_answer(page).locator(".message-content strong").inner_text() == "green tea"
    for kind in ("reasoning", "code", "subcall"):
        restored.locator(f".rlm-step.kind-{kind} summary").first.click()
    last_answer(page).screenshot(path=str(artifacts / "rlm-trace.png"))


def test_thinking_switched_off_sends_no_reasoning_and_the_trace_has_none(page, stack):
    _, first = as_streamed(repl('print("checked")'))
    _, second = as_streamed(repl('FINAL("All *done*.")'))
    stack.run(lambda: ScriptedLLM(stack.upstream, [first, second]))
    open_app(page)
    page.locator("#rlm-toggle").check()
    page.click("#open-settings")
    page.locator("#thinking-toggle").uncheck()
    page.keyboard.press("Escape")
    send(page, QUESTION)
    wait_for_answers(page, 1)
    trace = last_answer(page).locator(".rlm-trace")
    trace.locator(".rlm-summary").click()
    kinds = [s["kind"] for s in trace.evaluate(TRACE_SNAPSHOT)]
    assert kinds == ["code", "output", "code", "output", "final"]
    assert "checked" in trace.locator(".rlm-step.kind-output .rlm-pre.output").text_content()
    assert trace.get_by_role("button", name="Show thinking").is_visible()
    assert last_answer(page).locator(".message-content em").inner_text() == "done"
