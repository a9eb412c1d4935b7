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
import { mathExtensions } from "./math.js";

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

export function sanitize(html) {
  return DOMPurify.sanitize(html, SANITIZE_OPTIONS);
}

function blockElement(token, links) {
  const list = [token];
  list.links = links;
  const element = document.createElement("div");
  element.className = "md-block";
  element.innerHTML = sanitize(markdown.parser(list));
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
