// The RLM trace as a timeline: one row per root-model turn, code cell, sub-call batch and
// sub-RLM, with its duration and tokens, indented by depth and drawn as a bar on the job's
// time axis (steps carry `t`, ms since the job started, when they ended, and `ms`, how long
// they took). Plus "Copy trace as JSON": the trace in the format the README documents
// (tinychat-rlm-trace, version 1), for analysis offline.

import { copyText, flashButton } from "./code.js";
import { el } from "../ui/dom.js";

export const TRACE_FORMAT = "tinychat-rlm-trace";

const ROW_KINDS = new Set(["reasoning", "output", "subcall", "subrlm"]);
const LABELS = { reasoning: "Model turn", output: "Cell", subcall: "Sub-calls", subrlm: "Sub-RLM" };

function kindOf(step) {
  return String(step.kind ?? step.type ?? "");
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function tokensOf(step) {
  const usage = step.usage;
  if (!usage || typeof usage !== "object") return null;
  const total = usage.total_tokens ?? (usage.prompt_tokens || 0) + (usage.completion_tokens || 0);
  return Number.isFinite(total) ? total : null;
}

// Rows with start and end (ms since the job began); sub-RLMs span from their start step to
// their end step. Steps from before `t` existed get consecutive positions instead.
export function timelineRows(steps) {
  const rows = [];
  const openSubRlms = new Map();
  let clock = 0;
  for (const step of steps || []) {
    const kind = kindOf(step);
    if (!ROW_KINDS.has(kind)) continue;
    const depth = Number(step.depth) || 1;
    if (kind === "subrlm" && step.phase === "start") {
      openSubRlms.set(step.branch, { step, start: Number(step.t) || clock });
      continue;
    }
    if (kind === "reasoning" && !step.done) continue;
    const ms = Number(step.ms) || 0;
    const end = Number.isFinite(step.t) ? step.t : clock + ms;
    let start = end - ms;
    if (kind === "subrlm") start = openSubRlms.get(step.branch)?.start ?? start;
    clock = Math.max(clock, end);
    const label =
      kind === "subrlm"
        ? `${LABELS.subrlm} ${step.branch} · ${step.iterations ?? "?"} turns · ${step.outcome ?? ""}`
        : kind === "subcall"
          ? `${LABELS.subcall} ×${step.count ?? 1}`
          : `${LABELS[kind]} ${step.iteration ?? ""}`;
    rows.push({ kind, depth, label: label.trim(), start, end, ms, tokens: tokensOf(step) });
  }
  return rows;
}

export function traceDocument(message) {
  return {
    format: TRACE_FORMAT,
    version: 1,
    exportedAt: new Date().toISOString(),
    finishReason: message.finishReason ?? null,
    usage: message.usage ?? null,
    answer: message.content ?? "",
    steps: message.rlm || [],
  };
}

function signature(message) {
  const steps = message.rlm || [];
  return `${steps.length}:${steps.at(-1)?.done ? 1 : 0}:${message.state ?? ""}`;
}

const drawn = new WeakMap();

// Keeps one `.rlm-timeline` in `extras`, after the trace; redrawn only when steps change.
export function renderTimeline(extras, message) {
  let box = null;
  for (const child of extras.children) if (child.classList.contains("rlm-timeline")) box = child;
  const rows = timelineRows(message.rlm);
  if (!rows.length) {
    box?.remove();
    return;
  }
  if (!box) {
    box = el("details", { className: "rlm-timeline" });
    const trace = [...extras.children].find((c) => c.classList.contains("rlm-trace"));
    if (trace) trace.after(box);
    else extras.append(box);
  }
  const key = signature(message);
  if (drawn.get(box) === key) return;
  drawn.set(box, key);
  const total = Math.max(1, ...rows.map((r) => r.end));
  const tokens = rows.reduce((sum, r) => sum + (r.kind === "subrlm" ? 0 : r.tokens || 0), 0);
  const copy = el("button", { type: "button", className: "chip rlm-copy-json", text: "Copy trace as JSON" });
  copy.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      await copyText(JSON.stringify(traceDocument(message), null, 2));
      flashButton(copy, "Copied");
    } catch {
      flashButton(copy, "Copy failed");
    }
  });
  const summary = el("summary", { className: "rlm-timeline-summary" }, [
    el("span", { text: `Timeline · ${seconds(total)} · ${tokens.toLocaleString()} tokens` }),
  ]);
  const list = el(
    "ol",
    { className: "rlm-timeline-rows" },
    rows.map((row) => {
      const bar = el("span", { className: `rlm-timeline-bar kind-${row.kind}` });
      bar.style.marginLeft = `${(row.start / total) * 100}%`;
      bar.style.width = `${Math.max(0.5, (row.ms || row.end - row.start) / total) * 100}%`;
      const item = el("li", { className: `rlm-timeline-row kind-${row.kind}`, dataset: { depth: String(row.depth) } }, [
        el("span", { className: "rlm-timeline-label", text: row.label }),
        el("span", { className: "rlm-timeline-track" }, [bar]),
        el("span", { className: "rlm-timeline-ms", text: seconds(row.end - row.start) }),
        el("span", { className: "rlm-timeline-tokens", text: row.tokens === null ? "" : `${row.tokens.toLocaleString()} tok` }),
      ]);
      item.style.paddingLeft = `${(row.depth - 1) * 16}px`;
      return item;
    }),
  );
  box.replaceChildren(summary, el("div", { className: "rlm-timeline-actions" }, [copy]), list);
}
