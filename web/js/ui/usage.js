// Usage and speed, shown quietly under an answer: tokens in and out (from the API's usage,
// "≈" where chat-service had to estimate them), time to first token, tokens per second, and
// the conversation's total so far. The timing itself is measured by timing.js.

import { el } from "./dom.js";

function count(n) {
  return Number(n).toLocaleString("en-US");
}

export function usageText(message) {
  const usage = message.usage;
  if (!usage || typeof usage !== "object") return "";
  const approx = usage.estimated ? "≈" : "";
  const parts = [];
  if (Number.isFinite(usage.prompt_tokens)) parts.push(`${approx}${count(usage.prompt_tokens)} in`);
  if (Number.isFinite(usage.completion_tokens)) parts.push(`${approx}${count(usage.completion_tokens)} out`);
  if (!parts.length && Number.isFinite(usage.total_tokens)) parts.push(`${approx}${count(usage.total_tokens)} tokens`);
  const timing = message.timing;
  if (timing && Number.isFinite(timing.ttftMs)) parts.push(`TTFT ${(timing.ttftMs / 1000).toFixed(2)} s`);
  if (timing && Number.isFinite(usage.completion_tokens) && timing.generationMs > 0) {
    parts.push(`${approx}${(usage.completion_tokens / (timing.generationMs / 1000)).toFixed(1)} tok/s`);
  }
  if (usage.estimated) parts.push("estimated");
  return parts.join(" · ");
}

export function conversationTotal(conversation) {
  let total = 0;
  let estimated = false;
  for (const m of conversation.messages) {
    const u = m.usage;
    if (!u || typeof u !== "object") continue;
    const n = Number.isFinite(u.total_tokens) ? u.total_tokens : (u.prompt_tokens || 0) + (u.completion_tokens || 0);
    total += n;
    estimated ||= Boolean(u.estimated);
  }
  return { total, estimated };
}

// The footer's usage element for a message, or null. The last answer also shows the total.
export function usageLine(message, conversation, isLast) {
  const text = usageText(message);
  if (!text) return null;
  const line = el("span", { className: "usage", text });
  if (isLast) {
    const { total, estimated } = conversationTotal(conversation);
    line.append(el("span", { className: "usage-total", text: ` · conversation ${estimated ? "≈" : ""}${count(total)} tokens` }));
  }
  return line;
}

export function usageSignature(message) {
  return message.usage ? `${message.usage.total_tokens}:${message.timing?.ttftMs ?? ""}` : "";
}
