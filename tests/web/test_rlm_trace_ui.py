"""The RLM trace's per-step view in a real browser, with the real rlm-service at depth 3: a
sub-RLM (rlm_query) and its own sub-RLM sit nested under the cell that started them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rlm.harness import ScriptedLLM, repl

from .helpers import last_answer, open_app, send, wait_for_answers
from .stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# Each level's step list, as [kind, title] rows, sub-RLMs with their own rows nested.
LEVELS = """list => {
  const rows = (steps) => [...steps.children].map(step => {
    const title = step.querySelector(':scope > summary .rlm-kind').textContent;
    const nested = step.querySelector(':scope > .rlm-body > .rlm-substeps');
    return nested ? [title, rows(nested)] : title;
  });
  return rows(list);
}"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Overrides the session stack for this module: the real rlm-service, two levels of rlm_query."""
    running = Stack(real_rlm=True, rlm_overrides={"rlm_max_depth": 3}).start()
    yield running
    running.stop()


def test_sub_rlms_are_nested_under_the_cell_that_started_them(page, stack):
    turns = [
        repl("found = rlm_query('Find the colour.', context=['red', 'the colour is teal'])"),
        repl("inner = rlm_query('Just the word.', context=context[1])\nFINAL(inner.split()[-1])"),
        repl("FINAL(context)"),
        repl("FINAL('The colour is ' + found)"),
    ]
    stack.run(lambda: ScriptedLLM(stack.upstream, turns, lambda prompt: prompt))
    open_app(page)
    page.locator("#rlm-toggle").check()
    send(page, "What colour?")
    wait_for_answers(page, 1)
    answer = last_answer(page)
    assert "The colour is teal" in answer.locator(".message-content").inner_text()
    trace = answer.locator(".rlm-trace")
    trace.locator(".rlm-summary").click()
    assert "2 sub-RLMs" in trace.locator(".rlm-summary").inner_text()

    levels = trace.locator(".rlm-trace-fold > .rlm-steps").evaluate(LEVELS)
    assert levels == [
        "Iteration 1 · Reasoning",
        "Iteration 1 · Code",
        [
            "Iteration 1 · Sub-RLM 1",
            [
                "Iteration 1 · Reasoning",
                "Iteration 1 · Code",
                [
                    "Iteration 1 · Sub-RLM 1.2",
                    ["Iteration 1 · Reasoning", "Iteration 1 · Code", "Iteration 1 · Output", "Final answer"],
                ],
                "Iteration 1 · Output",
                "Final answer",
            ],
        ],
        "Iteration 1 · Output",
        "Iteration 2 · Reasoning",
        "Iteration 2 · Code",
        "Iteration 2 · Output",
        "Final answer",
    ]

    outer = trace.locator(".rlm-step.kind-subrlm[data-branch='1']")
    outer.locator(":scope > summary").click()
    body = outer.locator(":scope > .rlm-body")
    assert "Find the colour." in body.locator(":scope > .rlm-pre").first.inner_text()
    assert "ended after 1 iteration" in body.locator(":scope > .rlm-note").inner_text()
    assert body.locator(":scope > .rlm-pre.output").inner_text() == "teal"
    assert outer.locator(":scope > summary .rlm-duration").inner_text().endswith(("ms", "s"))
    # Hiding thinking hides the sub-RLMs' reasoning too.
    trace.get_by_role("button", name="Hide thinking").click()
    assert outer.locator(".rlm-step.kind-reasoning").first.is_hidden()
    assert outer.locator(".rlm-step.kind-code").first.is_visible()
