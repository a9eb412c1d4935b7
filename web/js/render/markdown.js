// Markdown → sanitised DOM. Raw HTML in a model's answer is shown as text (as chat apps do),
// and everything marked, KaTeX and highlight.js produce still passes DOMPurify.
//
// Streaming: the answer is lexed into top-level blocks; each block is rendered into its own
// element, and on the next frame only blocks whose source changed are rebuilt (usually just
// the last one), so a very long answer costs about the same per frame as a short one.

import { Marked } from "/vendor/marked/lib/marked.esm.js";
import DOMPurify from "/vendor/dompurify/dist/purify.es.mjs";
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

const renderedSources = new WeakMap(); // container → the source of each block it shows

export function renderMarkdownInto(container, text) {
  const tokens = markdown.lexer(text);
  const blocks = tokens.filter((t) => t.type !== "space");
  const previous = renderedSources.get(container) || [];
  const current = [];
  for (let i = 0; i < blocks.length; i++) {
    const raw = blocks[i].raw;
    current.push(raw);
    const existing = container.children[i];
    if (existing && previous[i] === raw) continue;
    const element = blockElement(blocks[i], tokens.links);
    if (existing) existing.replaceWith(element);
    else container.append(element);
  }
  while (container.children.length > blocks.length) container.lastElementChild.remove();
  renderedSources.set(container, current);
}

export function renderPlainInto(container, text) {
  renderedSources.delete(container);
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
