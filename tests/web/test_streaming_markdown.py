"""Markdown rendered while it streams in (each frame lexes only the answer's tail) must look
exactly like the same text rendered in one go, at every step of the stream."""

from __future__ import annotations

import pytest

from .helpers import open_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

# Pieces chosen for the places where a later line changes an earlier block: lists that go
# on after a blank line, setext headings, tables, fences, display math over blank lines,
# link definitions that arrive after the link.
PIECES = [
    "# Title\n\n",
    "Some *para* text with $x^2$ and \\(y\\).\n",
    "continued line\n\n",
    "- a\n- b\n\n",
    "  still the item\n\n",
    "1. one\n\n2",
    ". two\n\n",
    "para\n===\n\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
    "```python\ndef f():\n\n    return 1\n```\n\n",
    "$$\n\\sum_k k\n$$\n\n",
    "Text then\n$$\na\n\nb\n\nc\n$$\n\n",
    "> quote\nlazy\n\n",
    "    indented code\n\n",
    "text\n---\n",
    "[the docs][d] and [more][m]\n\n",
    "[d]: https://example.com/docs\n\n",
    "- [ ] task\n- [x] done\n\n",
    "<b>raw html</b> stays text\n\n",
    "Prices $5 and $10.\n",
]

COMPARE = """async ([pieces, steps]) => {
  const { renderMarkdownInto } = await import("/js/render/markdown.js");
  const text = pieces.join("");
  const streamed = document.createElement("div");
  const mismatches = [];
  let at = 0, renders = 0;
  while (at < text.length) {
    at = Math.min(text.length, at + steps[renders % steps.length]);
    renders++;
    const prefix = text.slice(0, at);
    renderMarkdownInto(streamed, prefix);
    const whole = document.createElement("div");
    renderMarkdownInto(whole, prefix);
    if (streamed.innerHTML !== whole.innerHTML && mismatches.length < 3) {
      mismatches.push({prefix, streamed: streamed.innerHTML, whole: whole.innerHTML});
    }
  }
  return { renders, mismatches, links: streamed.querySelectorAll("a[href]").length };
}"""


def test_streamed_markdown_renders_exactly_like_the_whole_text(page) -> None:
    open_app(page)
    for pieces in (PIECES, PIECES[::-1], PIECES[5:] + PIECES[:5]):
        result = page.evaluate(COMPARE, [pieces, [1, 4, 2, 7, 3, 9, 5]])
        assert result["renders"] > 50
        assert result["mismatches"] == []


def test_a_link_definition_arriving_late_turns_earlier_references_into_links(page) -> None:
    open_app(page)
    result = page.evaluate(COMPARE, [PIECES, [3]])
    # [the docs][d] becomes a link once "[d]: …" has streamed in; [more][m] never does.
    assert result["mismatches"] == []
    assert result["links"] == 1
