// A model's reasoning, shown apart from its answer: a collapsed block that reads "Thinking…"
// while the model thinks and "Thought for 12 s" once the answer begins; a click opens it.
// The text goes in through textContent only (it is never markdown or HTML), and a growing
// block appends just its new characters, so a long thought costs nothing per frame.

import { el } from "../ui/dom.js";

export function reasoningLabel(message, streaming) {
  if (typeof message.reasoningMs === "number") {
    const seconds = Math.max(1, Math.round(message.reasoningMs / 1000));
    return `Thought for ${seconds} s`;
  }
  return streaming ? "Thinking…" : "Thought";
}

// What changes the block: for the view's "did anything change" key.
export function reasoningSignature(message) {
  return message.reasoning ? `${message.reasoning.length}:${message.reasoningMs ?? ""}` : "";
}

export function renderReasoning(extras, message, streaming) {
  let block = null;
  for (const child of extras.children) if (child.classList.contains("reasoning")) block = child;
  if (!message.reasoning) {
    block?.remove();
    return;
  }
  if (!block) {
    block = el("details", { className: "reasoning" }, [
      el("summary", {}, [el("span", { className: "reasoning-label" })]),
      el("div", { className: "reasoning-body" }),
    ]);
    extras.prepend(block);
  }
  const thinking = streaming && typeof message.reasoningMs !== "number";
  block.classList.toggle("thinking", thinking);
  block.querySelector(".reasoning-label").textContent = reasoningLabel(message, streaming);
  const body = block.querySelector(".reasoning-body");
  const shown = body.textContent.length;
  if (message.reasoning.length > shown && message.reasoning.startsWith(body.textContent.slice(0, 64))) {
    body.append(message.reasoning.slice(shown));
  } else if (message.reasoning.length !== shown) {
    body.textContent = message.reasoning;
  }
}

// Markdown export: the reasoning as a quoted block before the answer.
export function reasoningMarkdown(message) {
  if (!message.reasoning) return "";
  const label = reasoningLabel(message, false);
  return `> **${label}:**\n> ${message.reasoning.trim().replace(/\n/g, "\n> ")}\n`;
}
