// Markdown → sanitised DOM. Raw HTML in a model's answer is shown as text (as chat apps do),
// and everything marked, KaTeX and highlight.js produce still passes DOMPurify.
//
// Streaming: the answer is lexed into top-level blocks; each block is rendered into its own
// element, and on the next frame only blocks whose source changed are rebuilt (usually just
// the last one). Lexing, too, starts again only at the last settled block (blocks.js), so a
// very long answer costs about the same per frame as a short one.

import { Marked } from "/vendor/marked/lib/marked.esm.js";
import DOMPurify from "/vendor/dompurify/dist/purify.es.mjs";
import { lexGrowing } from "./blocks.js";
import { codeBlockHtml, enhanceCodeBlocks, escapeHtml } from "./code.js";
import { collectFormulas, mathExtensions, renderMath } from "./math.js";

const markdown = new Marked({ gfm: true, breaks: false });
markdown.use({
  extensions: mathExtensions,
  renderer: {
    code({ text, lang }) {
      return codeBlockHtml(text, lang);
    },
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      // Remote pictures are blocked by the CSP anyway; a link keeps the information.
      const label = escapeHtml(text || href || "image");
      return `<a href="${escapeHtml(href || "")}">🖼 ${label}</a>`;
    },
  },
});

const SANITIZE_OPTIONS = {
  ALLOW_DATA_ATTR: false,
  FORBID_TAGS: ["style", "form", "img", "iframe", "textarea", "select", "button", "video", "audio", "source"],
  FORBID_ATTR: ["id", "name", "srcset"],
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  } else if (node.tagName === "INPUT") {
    // Task-list checkboxes are the only inputs markdown makes; they show, never submit.
    if (node.getAttribute("type") !== "checkbox") node.remove();
    else node.setAttribute("disabled", "");
  }
});

// Sanitised nodes, not HTML: writing them out and parsing that again costs time on every frame.
const SANITIZE_TO_NODES = { ...SANITIZE_OPTIONS, RETURN_DOM_FRAGMENT: true };
const FORMULAS_KEPT = 500;
const sanitizedFormulas = new Map(); // "d|i" + TeX → its sanitised nodes, least recently used first

export function sanitize(html) {
  return DOMPurify.sanitize(html, SANITIZE_OPTIONS);
}

function formulaNodes({ tex, displayMode }) {
  const key = (displayMode ? "d" : "i") + tex;
  let nodes = sanitizedFormulas.get(key);
  if (nodes) {
    sanitizedFormulas.delete(key);
  } else {
    nodes = DOMPurify.sanitize(renderMath(tex, displayMode), SANITIZE_TO_NODES);
    if (sanitizedFormulas.size >= FORMULAS_KEPT) sanitizedFormulas.delete(sanitizedFormulas.keys().next().value);
  }
  sanitizedFormulas.set(key, nodes);
  return nodes.cloneNode(true);
}

// The same nodes as sanitising the block with its formulas in place: DOMPurify judges each
// element and attribute on its own, and KaTeX's output is phrasing content wherever it sits.
function sanitizedBlock(token, links) {
  const list = [token];
  list.links = links;
  const { html, formulas, slotClass } = collectFormulas(() => markdown.parser(list));
  const nodes = DOMPurify.sanitize(html, SANITIZE_TO_NODES);
  if (formulas.length === 0) return nodes;
  for (const slot of nodes.querySelectorAll(`i.${slotClass}`)) {
    const formula = formulas[Number(slot.title)];
    if (formula) slot.replaceWith(formulaNodes(formula));
    else slot.remove();
  }
  return nodes;
}

function blockElement(token, links) {
  const element = document.createElement("div");
  element.className = "md-block";
  element.append(sanitizedBlock(token, links));
  enhanceCodeBlocks(element);
  return element;
}

const lex = (text) => markdown.lexer(text);
// container → what it shows: the lexed answer (to lex only its tail next time), the source
// of each block, and the link definitions those blocks were rendered with.
const rendered = new WeakMap();

export function renderMarkdownInto(container, text) {
  const previous = rendered.get(container);
  const lexed = lexGrowing(lex, text, previous?.lexed);
  const { blocks, links } = lexed;
  const linksKey = JSON.stringify(links);
  // A link definition can change how any block renders, so a new one redraws them all.
  const sources = previous && previous.linksKey === linksKey ? previous.sources : [];
  const current = [];
  for (let i = 0; i < blocks.length; i++) {
    const raw = blocks[i].raw;
    current.push(raw);
    const existing = container.children[i];
    if (existing && sources[i] === raw) continue;
    const element = blockElement(blocks[i], links);
    if (existing) existing.replaceWith(element);
    else container.append(element);
  }
  while (container.children.length > blocks.length) container.lastElementChild.remove();
  rendered.set(container, { lexed, sources: current, linksKey });
}

// A page's first answer would otherwise pay on its first frames for the browser compiling
// the renderer (marked, KaTeX, DOMPurify): a short sample is streamed into a detached element
// in idle time, one step per idle callback, so nothing the user does has to wait for it.
const WARM_UP_SAMPLE =
  "## A heading\n\nSome *text* with $x^2$, \\(y_1\\) and `code`.\n\n" +
  "- an item with $a + b$\n- another with \\(c^2\\)\n\n1. one\n2. two\n\n" +
  "$$\n\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}\n$$\n\n| a | b |\n|---|---|\n| 1 | $z$ |\n\n> a quote\n";
const WARM_UP_STEPS = 12;

export function warmUpRenderer(whenIdle = (step) => setTimeout(step, 50)) {
  const scratch = document.createElement("div");
  let step = 0;
  const next = () => {
    step++;
    renderMarkdownInto(scratch, WARM_UP_SAMPLE.slice(0, Math.ceil((WARM_UP_SAMPLE.length * step) / WARM_UP_STEPS)));
    if (step < WARM_UP_STEPS) whenIdle(next);
  };
  whenIdle(next);
}

export function renderPlainInto(container, text) {
  rendered.delete(container);
  let pre = container.firstElementChild;
  if (!pre || !pre.classList.contains("plain-text") || container.children.length !== 1) {
    container.replaceChildren();
    pre = document.createElement("div");
    pre.className = "plain-text";
    container.append(pre);
  }
  pre.textContent = text;
}

export function renderMarkdownToHtml(text) {
  return sanitize(markdown.parse(text));
}
