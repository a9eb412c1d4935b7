"""The README's screenshots: one conversation (with a regenerated answer's ‹ 2/2 ›) in each
theme. Written to test-artifacts/; with TINYCHAT_UPDATE_SCREENSHOTS=1, to docs/screenshots/,
which the README shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import Reply

from .helpers import last_answer, open_app, send, wait_for_answers

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

FIRST = "Tea is brewed from leaves; coffee from roasted beans."
SECOND = """Both are brewed, but they differ in almost every way:

| | tea | coffee |
|:--|:--:|--:|
| caffeine per cup | ~47 mg | ~95 mg |
| brewing water | 80–100 °C | 90–96 °C |

The extraction follows roughly $c(t) = c_\\infty (1 - e^{-kt})$, so steeping longer gives
diminishing returns.

```python
def steep(minutes: float, k: float = 0.6) -> float:
    return 1 - math.exp(-k * minutes)
```
"""


@pytest.fixture(params=["light", "dark"])
def color_scheme(request) -> str:
    return request.param


def test_readme_screenshot_of_a_conversation(page, stack, color_scheme, artifacts):
    stack.run(lambda: stack.upstream.enqueue(Reply(text=FIRST), Reply(text=SECOND)))
    open_app(page)
    send(page, "How are tea and coffee different?")
    wait_for_answers(page, 1)
    last_answer(page).get_by_role("button", name="Regenerate answer").click()
    last_answer(page).locator(".katex").first.wait_for()
    wait_for_answers(page, 1)
    page.locator("#composer-input").fill("")
    page.mouse.move(0, 0)
    target = DOCS if os.environ.get("TINYCHAT_UPDATE_SCREENSHOTS") == "1" else artifacts
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"conversation-{color_scheme}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
