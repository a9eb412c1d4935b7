"""RLM for a newcomer: with the built-in demo model (what `make run` uses without an API key)
and the REAL rlm-service, an RLM question runs a real code cell in the sandbox, asks the
helper through llm_query, and answers in a few seconds; the trace is one summary line."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .helpers import last_answer, open_app, send, wait_for_answers
from .stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    running = Stack(real_rlm=True, demo_model=True).start()
    yield running
    running.stop()


def test_the_demo_model_speaks_rlm_with_a_real_cell_and_a_sub_call(page, stack):
    open_app(page)
    assert page.locator("#model-select").input_value() == "tinychat-demo"
    assert "sandbox" in page.locator("#rlm-explain").inner_text()
    page.locator("#rlm-toggle").check()
    send(page, "Please summarise this note about green tea and biscuits.")
    wait_for_answers(page, 1)
    answer = last_answer(page)
    assert "What RLM just did" in answer.locator(".message-content").inner_text()
    assert "llm_query" in answer.locator(".message-content").inner_text()
    assert "Best answer forced" not in answer.inner_text()

    summary = answer.locator(".rlm-summary")
    match = re.fullmatch(r"Worked for (\d+\.\d) s · 2 steps · 1 sub-call", summary.inner_text())
    assert match, summary.inner_text()
    assert float(match.group(1)) < 30
    summary.click()
    output = answer.locator(".rlm-step.kind-output").first
    output.locator("summary").click()
    text = output.inner_text()
    # Real output of the cell, computed in the sandbox: the message's own length.
    assert "context is a str of" in text and "llm_query answered:" in text
    assert answer.locator(".rlm-step.kind-subcall").count() == 1
    assert answer.locator(".rlm-step.kind-final").count() == 1
