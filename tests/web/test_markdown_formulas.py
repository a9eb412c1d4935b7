"""Formulas are sanitised once each and their nodes reused while an answer streams; the result
must be exactly what sanitising the whole rendered HTML, formulas in place, gives."""

from __future__ import annotations

import pytest

from .helpers import open_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

# Formulas in every place markdown can hold them, a repeated one, a broken one and one
# written as raw HTML (which must stay text).
TEXT = (
    "## Heading with $h^2$ and $h^2$ again\n\n"
    "A paragraph: $a_1 + b_1$, \\(y^2 = 4\\), *em $x$*, **$y$**, [link $q$](https://example.com).\n\n"
    "- item $\\alpha$\n- item \\(\\beta\\)\n  - nested $\\gamma$\n\n"
    "1. first $1$\n2. second $2$\n\n"
    "> quoted $z$\n\n"
    "| a | $b$ |\n|---|---|\n| $c$ | d |\n\n"
    "$$\n\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}\n$$\n\n"
    "Inline display \\[ \\int_0^1 f \\] and $$a+b$$ here.\n\n"
    "Broken $\\frac{1}{$ and fine $\\sqrt{2}$.\n\n"
    '<i class="math-slot-1" title="0"></i> raw html\n'
)

COMPARE = """async (text) => {
  const { renderMarkdownInto, renderMarkdownToHtml } = await import("/js/render/markdown.js");
  const streamed = document.createElement("div");
  for (let end = 1; end <= text.length; end += 5) renderMarkdownInto(streamed, text.slice(0, end));
  renderMarkdownInto(streamed, text);
  const whole = document.createElement("div");
  whole.innerHTML = renderMarkdownToHtml(text);
  return {
    blocks: [...streamed.children].map((block) => block.innerHTML).join(""),
    whole: whole.innerHTML,
    katex: streamed.querySelectorAll(".katex").length,
    broken: streamed.querySelectorAll(".katex-error").length,
    rawItalics: streamed.querySelectorAll("i").length,
  };
}"""


def test_formulas_render_exactly_as_sanitising_the_whole_html(page) -> None:
    open_app(page)
    result = page.evaluate(COMPARE, TEXT)
    assert result["blocks"] == result["whole"]
    assert result["katex"] == 19  # every well-formed formula above, each in its place
    assert result["broken"] == 1
    assert result["rawItalics"] == 0
