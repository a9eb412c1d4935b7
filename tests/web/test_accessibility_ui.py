"""An axe-core scan (the version pinned in web/package.json) of the main states of the UI in
both themes, at desktop and phone sizes: no serious or critical violation. Contrast is part of
the scan (WCAG AA), and so are the few small layout promises checked next to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"

ANSWER = """## A table

| left | centre | right |
|:-----|:------:|------:|
| a | b | c |

Some `code`, a [link](https://example.com) and math $x^2$.

```python
print("hi")
```
"""


def scan(page, label: str) -> list[str]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluate, not a <script> tag: the page's CSP rightly refuses inline scripts.
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        """async () => {
        const tags = ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice'];
        const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
        const where = (n) => n.target.join(' ') + ' ' + (n.failureSummary || '').slice(0, 200);
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
          .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 4).map(where)}));
    }"""
    )
    return [f"{label}: {json.dumps(v)}" for v in result]


@pytest.fixture(params=["light", "dark"])
def color_scheme(request) -> str:
    return request.param


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 860}, {"width": 390, "height": 844}], ids=["desktop", "phone"]
)
def test_main_states_have_no_serious_accessibility_violations(page, stack, viewport, color_scheme, artifacts):
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `make web`")
    stack.run(lambda: stack.upstream.enqueue(Reply(text=ANSWER), Reply(status=500)))
    problems: list[str] = []
    open_app(page)
    page.locator("#composer-input").fill("")
    problems += scan(page, "empty")
    send(page, "Show me a table")
    wait_for_answers(page, 1)
    problems += scan(page, "answer")
    last_answer(page).get_by_role("button", name="Regenerate answer").click()
    last_answer(page).locator(".message-problem.error").wait_for()
    problems += scan(page, "error with versions")
    page.click("#open-settings")
    problems += scan(page, "settings")
    page.click("#open-settings")
    page.click("#export-one")
    page.get_by_role("menuitem", name="Copy share link…").click()
    problems += scan(page, "share dialog")
    page.click("#share-close")
    page.set_input_files(
        "#import-file", files=[{"name": "x.json", "mimeType": "application/json", "buffer": b"{"}]
    )
    page.locator(".toast.error").wait_for()
    page.wait_for_function("() => document.querySelector('.toast').getAnimations().length === 0")
    problems += scan(page, "notification")
    if viewport["width"] < 800:
        page.click("#open-sidebar")
        page.locator("#sidebar").wait_for()
        page.wait_for_timeout(300)
        problems += scan(page, "drawer")
    report = artifacts / f"axe-{color_scheme}-{viewport['width']}.txt"
    report.write_text("\n".join(problems) + "\n")
    assert problems == [], f"see {report}"


def test_table_columns_keep_their_alignment(page, stack):
    stack.run(lambda: stack.upstream.enqueue(Reply(text=ANSWER)))
    open_app(page)
    send(page, "table")
    wait_for_answers(page, 1)
    cells = last_answer(page).locator("table td")
    aligns = [cells.nth(i).evaluate("el => getComputedStyle(el).textAlign") for i in range(3)]
    assert aligns == ["start", "center", "right"]


def test_the_token_count_is_the_answer_not_prompt_plus_answer(page, stack):
    usage = {"prompt_tokens": 5000, "completion_tokens": 42, "total_tokens": 5042}
    stack.run(lambda: stack.upstream.enqueue(Reply(text="Short", usage=usage)))
    open_app(page)
    send(page, "count")
    wait_for_answers(page, 1)
    # The answer's tokens stand apart from the prompt's; nothing adds the two into one count.
    line = last_answer(page).locator(".usage").inner_text()
    assert "42 out" in line and "5,000 in" in line, line
    assert "5,042 tokens" not in line.replace("conversation 5,042 tokens", ""), line


def test_sidebar_buttons_do_not_wrap(page, stack):
    open_app(page)
    heights = page.locator(".sidebar-foot .text-button").evaluate_all("els => els.map(e => e.offsetHeight)")
    assert len(set(heights)) == 1, heights
    line = page.locator("#export-all-md").evaluate("el => parseFloat(getComputedStyle(el).lineHeight)")
    assert heights[0] < 2 * line + 12
