// Code blocks: highlighted by highlight.js (its output is escaped text in <span>s), then,
// after sanitising, given a header with the language and a copy button. The buttons get
// their own listeners: model output can never carry an element the app would act on.

import hljs from "/vendor/@highlightjs/cdn-assets/es/highlight.min.js";

const AUTO_DETECT_LIMIT = 5000; // guessing the language of a huge block costs too much per frame

export function escapeHtml(text) {
  return String(text)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

export function highlightCode(code, lang) {
  const language = (lang || "").trim().split(/\s+/)[0].toLowerCase();
  if (language && hljs.getLanguage(language)) {
    return { html: hljs.highlight(code, { language, ignoreIllegals: true }).value, language };
  }
  if (!language && code.length <= AUTO_DETECT_LIMIT) {
    const guess = hljs.highlightAuto(code);
    if (guess.language && guess.relevance >= 5) return { html: guess.value, language: guess.language, guessed: true };
  }
  return { html: escapeHtml(code), language };
}

export function codeBlockHtml(code, lang) {
  const { html, language, guessed } = highlightCode(code, lang);
  const label = language ? `language-${language.replace(/[^\w+#.-]/g, "")}` : "language-plain";
  const guessedClass = guessed ? " guessed" : "";
  return `<pre class="code-block"><code class="hljs ${label}${guessedClass}">${html}</code></pre>\n`;
}

export async function copyText(text) {
  // The Clipboard API needs a secure context; plain-http LAN installs fall back to execCommand.
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

export function flashButton(button, text) {
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = text;
  setTimeout(() => {
    button.textContent = original;
  }, 1500);
}

function languageName(code) {
  const match = /language-([\w+#.-]+)/.exec(code.className);
  if (!match || match[1] === "plain") return "text";
  return hljs.getLanguage(match[1])?.name || match[1];
}

export function enhanceCodeBlocks(root) {
  for (const pre of root.querySelectorAll("pre.code-block")) {
    if (pre.parentElement?.classList.contains("code-frame")) continue;
    const code = pre.querySelector("code");
    const frame = document.createElement("div");
    frame.className = "code-frame";
    const header = document.createElement("div");
    header.className = "code-header";
    const label = document.createElement("span");
    label.className = "code-lang";
    label.textContent = languageName(code);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "code-copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", `Copy ${label.textContent} code`);
    button.addEventListener("click", async () => {
      try {
        await copyText(code.textContent);
        flashButton(button, "Copied");
      } catch {
        flashButton(button, "Copy failed");
      }
    });
    header.append(label, button);
    pre.replaceWith(frame);
    frame.append(header, pre);
  }
}
