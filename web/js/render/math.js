// Math as marked extensions, so the markdown lexer finds it: code spans and blocks are
// lexed first and never reach these tokenizers.
//   inline  $…$   \(…\)          display  $$…$$   \[…\]
// Dollar rules keep prices and shell variables as text ("$5 and $10", "$HOME"): the opening
// $ must be followed by a non-space, the closing $ preceded by a non-space and not followed
// by a digit, and the formula must stay on one line.

import katex from "/vendor/katex/dist/katex.mjs";

export function renderMath(tex, displayMode) {
  // throwOnError: false shows a broken formula in red instead of losing the whole message;
  // trust stays off, so \href and friends cannot create links.
  return katex.renderToString(tex, { displayMode, throwOnError: false, output: "htmlAndMathml", strict: "ignore" });
}

// Sanitising KaTeX's output (a few dozen elements per formula) is most of the cost of
// rendering a block, and while an answer streams its last block is rendered again on every
// frame with the same formulas. So a block can be parsed with each formula left as an empty
// slot (collectFormulas), for markdown.js to fill with nodes it sanitised once per formula.
// The slot's class carries a random part: model output cannot name one.
const SLOT_CLASS = `math-slot-${crypto.getRandomValues(new Uint32Array(2)).join("")}`;
let collecting = null; // the formulas of the block being parsed, in slot order

export function collectFormulas(parse) {
  collecting = [];
  try {
    return { html: parse(), formulas: collecting, slotClass: SLOT_CLASS };
  } finally {
    collecting = null;
  }
}

function formulaHtml(tex, displayMode) {
  if (!collecting) return renderMath(tex, displayMode);
  collecting.push({ tex, displayMode });
  return `<i class="${SLOT_CLASS}" title="${collecting.length - 1}"></i>`;
}

function findClosingDollar(src, from) {
  for (let i = from; i < src.length; i++) {
    const ch = src[i];
    if (ch === "\n") return -1;
    if (ch === "\\") {
      i++;
      continue;
    }
    if (ch === "$") {
      const before = src[i - 1];
      const after = src[i + 1] || "";
      if (i === from || /\s/.test(before) || /\d/.test(after)) continue;
      return i;
    }
  }
  return -1;
}

function inlineDollar(src) {
  if (src[0] !== "$" || src[1] === "$") return null;
  if (!src[1] || /\s/.test(src[1])) return null;
  const end = findClosingDollar(src, 1);
  if (end < 0) return null;
  return { raw: src.slice(0, end + 1), text: src.slice(1, end), display: false };
}

const INLINE_PAREN = /^\\\(([\s\S]+?)\\\)/;
const INLINE_DOUBLE = /^\$\$(?!\s*\$)([^$]+?)\$\$/;
const INLINE_BRACKET = /^\\\[([\s\S]+?)\\\]/;
const BLOCK_DOUBLE = /^ {0,3}\$\$([\s\S]+?)\$\$ *(?:\n+|$)/;
const BLOCK_BRACKET = /^ {0,3}\\\[([\s\S]+?)\\\] *(?:\n+|$)/;

export const mathExtensions = [
  {
    name: "blockMath",
    level: "block",
    start(src) {
      return src.match(/^ {0,3}(\$\$|\\\[)/m)?.index;
    },
    tokenizer(src) {
      const match = BLOCK_DOUBLE.exec(src) || BLOCK_BRACKET.exec(src);
      if (!match) return undefined;
      return { type: "blockMath", raw: match[0], text: match[1].trim() };
    },
    renderer(token) {
      return `<div class="math-display">${formulaHtml(token.text, true)}</div>\n`;
    },
  },
  {
    name: "inlineMath",
    level: "inline",
    start(src) {
      return src.match(/\$|\\\(|\\\[/)?.index;
    },
    tokenizer(src) {
      let match = INLINE_DOUBLE.exec(src) || INLINE_BRACKET.exec(src);
      if (match) return { type: "inlineMath", raw: match[0], text: match[1].trim(), display: true };
      match = INLINE_PAREN.exec(src);
      if (match) return { type: "inlineMath", raw: match[0], text: match[1].trim(), display: false };
      const dollar = inlineDollar(src);
      if (dollar) return { type: "inlineMath", raw: dollar.raw, text: dollar.text, display: false };
      return undefined;
    },
    renderer(token) {
      const cls = token.display ? "math-display" : "math-inline";
      return `<span class="${cls}">${formulaHtml(token.text, token.display)}</span>`;
    },
  },
];
