// The RLM trace: one collapsible step per `rlm` event (reasoning, code, output, sub-calls),
// appended in place while the job runs; "thinking" (the model's reasoning) can be hidden.

import { codeBlockHtml } from "../render/code.js";
import { sanitize } from "../render/markdown.js";
import { el } from "./dom.js";

const LABELS = {
  reasoning: "Reasoning",
  thinking: "Reasoning",
  code: "Code",
  output: "Output",
  subcall: "Sub-call",
  sub_call: "Sub-call",
  llm_query: "Sub-call",
  final: "Final answer",
  forced: "Forced answer",
};

export function stepKind(step) {
  const kind = String(step.type || step.kind || "").toLowerCase();
  if (kind) return kind;
  if (step.code) return "code";
  if (step.output !== undefined || step.stdout !== undefined) return "output";
  if (step.prompt !== undefined) return "subcall";
  return "reasoning";
}

function text(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function durationOf(step) {
  const ms = step.duration_ms ?? step.elapsed_ms ?? (step.duration !== undefined ? Number(step.duration) * 1000 : null);
  if (ms === null || Number.isNaN(ms)) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function preBlock(content, className = "") {
  return el("pre", { className: `rlm-pre ${className}`, text: content });
}

function stepBody(step, kind) {
  const body = el("div", { className: "rlm-body" });
  if (step.code) {
    const wrapper = el("div", { className: "rlm-code" });
    wrapper.innerHTML = sanitize(codeBlockHtml(text(step.code), "python"));
    body.append(wrapper);
  }
  const main = step.content ?? step.text ?? step.reasoning;
  if (main !== undefined && kind !== "code") body.append(preBlock(text(main)));
  if (step.prompt !== undefined) body.append(el("div", { className: "rlm-label", text: "Prompt" }), preBlock(text(step.prompt)));
  if (step.response !== undefined) body.append(el("div", { className: "rlm-label", text: "Response" }), preBlock(text(step.response)));
  for (const key of ["output", "stdout"]) {
    if (step[key] !== undefined && step[key] !== "") body.append(preBlock(text(step[key]), "output"));
  }
  if (step.stderr) body.append(preBlock(text(step.stderr), "stderr"));
  if (Array.isArray(step.subcalls || step.sub_calls)) {
    for (const call of step.subcalls || step.sub_calls) {
      const summary = el("summary", { text: `Sub-call ${durationOf(call)}`.trim() });
      body.append(el("details", { className: "rlm-subcall" }, [summary, preBlock(text(call.prompt)), preBlock(text(call.response), "output")]));
    }
  }
  if (!body.childElementCount) body.append(preBlock(text(step)));
  return body;
}

function stepElement(step, index) {
  const kind = stepKind(step);
  const iteration = step.iteration ?? step.turn;
  const parts = [LABELS[kind] || kind.replace(/_/g, " ")];
  if (iteration !== undefined) parts.unshift(`Iteration ${iteration}`);
  const summary = el("summary", {}, [
    el("span", { className: `rlm-kind ${kind}`, text: parts.join(" · ") }),
    el("span", { className: "rlm-duration", text: durationOf(step) }),
  ]);
  const details = el("details", { className: `rlm-step kind-${kind.replace(/[^\w-]/g, "")}` }, [summary, stepBody(step, kind)]);
  details.dataset.index = String(index);
  details.dataset.thinking = String(kind === "reasoning" || kind === "thinking");
  return details;
}

export function renderTrace(container, steps, showThinking) {
  let trace = container.querySelector(".rlm-trace");
  if (!steps?.length) {
    trace?.remove();
    return;
  }
  if (!trace) {
    const toggle = el("button", { type: "button", className: "rlm-thinking-toggle" });
    toggle.dataset.action = "toggle-thinking";
    const list = el("div", { className: "rlm-steps" });
    trace = el("section", { className: "rlm-trace", "aria-label": "RLM trace" }, [
      el("div", { className: "rlm-trace-head" }, [el("span", { className: "rlm-trace-title", text: "RLM trace" }), toggle]),
      list,
    ]);
    container.prepend(trace);
  }
  trace.classList.toggle("hide-thinking", !showThinking);
  const toggle = trace.querySelector(".rlm-thinking-toggle");
  toggle.textContent = showThinking ? "Hide thinking" : "Show thinking";
  toggle.setAttribute("aria-pressed", String(showThinking));
  const list = trace.querySelector(".rlm-steps");
  for (let i = list.children.length; i < steps.length; i++) list.append(stepElement(steps[i], i));
  trace.querySelector(".rlm-trace-title").textContent = `RLM trace · ${steps.length} step${steps.length === 1 ? "" : "s"}`;
}
