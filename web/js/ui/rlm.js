// The RLM trace: the steps rlm-service sends as `rlm` events, one collapsible element each,
// in order: reasoning (the root model's turn, merged from its deltas by the store), code,
// output, sub-calls and the final answer. Elements are keyed by position and updated in place:
// the store only ever changes the last step, so a reasoning delta appends its new characters
// to the open step's text node instead of rebuilding anything. All text goes in through
// textContent; highlighted code passes DOMPurify. "Thinking" (reasoning) can be hidden.
// A sub-RLM (rlm_query) is one element in the list of the level that started it, right after
// that level's code cell; the sub-RLM's own steps (events with its `branch`) go inside it,
// nested as deep as the recursion goes, and its `end` step fills in its outcome and answer.
// The whole trace is folded into one summary line ("Worked for 4.2 s · 3 steps · 1 sub-call")
// that opens into the steps; the answer below it is always in view.

import { codeBlockHtml, enhanceCodeBlocks } from "../render/code.js";
import { sanitize } from "../render/markdown.js";
import { el } from "./dom.js";

const LABELS = {
  reasoning: "Reasoning",
  code: "Code",
  output: "Output",
  subcall: "Sub-call",
  subrlm: "Sub-RLM",
  final: "Final answer",
};

const PREVIEW_CHARS = 90;

// What each step element last showed, so an update touches only what changed.
const shown = new WeakMap();
// Per trace: the element of each step, by position, and the step list of each open level
// ("" the root, "1", "1.2", … the sub-RLMs).
const layouts = new WeakMap();

export function stepKind(step) {
  // `type` is how traces were stored before the UI followed rlm-service's `kind`.
  return String(step.kind ?? step.type ?? "").toLowerCase() || "step";
}

function reasoningText(step) {
  return String(step.text ?? step.content ?? "");
}

// Changes whenever the trace would look different: a step was added, or the last one (the
// only one that changes) grew or finished. The chat view uses it to skip needless renders.
export function traceSignature(steps) {
  if (!steps?.length) return "";
  const last = steps.at(-1);
  return `${steps.length}:${reasoningText(last).length}:${last.done ? 1 : 0}`;
}

function duration(ms) {
  const value = Number(ms);
  if (ms === undefined || ms === null || Number.isNaN(value)) return "";
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
}

function preview(text) {
  const line = String(text || "").trim().split("\n", 1)[0];
  return line.length > PREVIEW_CHARS ? `${line.slice(0, PREVIEW_CHARS - 1)}…` : line;
}

function pre(text, className = "") {
  return el("pre", { className: `rlm-pre ${className}`.trim(), text });
}

function note(text) {
  return el("p", { className: "rlm-note", text });
}

function labelled(label, text, className) {
  return [el("div", { className: "rlm-label", text: label }), pre(text, className)];
}

function codeBody(step) {
  const wrapper = el("div", { className: "rlm-code" });
  wrapper.innerHTML = sanitize(codeBlockHtml(String(step.code ?? ""), "python"));
  enhanceCodeBlocks(wrapper);
  return [wrapper];
}

function outputBody(step) {
  const parts = [];
  const stdout = step.stdout ?? step.output;
  if (stdout) parts.push(pre(String(stdout), "output"));
  if (step.stderr) parts.push(...labelled("stderr", String(step.stderr), "stderr"));
  if (step.error) parts.push(...labelled("Error", String(step.error), "stderr"));
  if (!parts.length) parts.push(note("The cell printed nothing."));
  if (step.truncated_chars > 0) {
    parts.push(note(`${Number(step.truncated_chars).toLocaleString()} more characters were cut from this output.`));
  }
  if (step.final) parts.push(note("This cell set the final answer."));
  return parts;
}

function subcallBody(step) {
  const prompts = Array.isArray(step.prompts) ? step.prompts : [];
  const answers = Array.isArray(step.answers) ? step.answers : [];
  const parts = [];
  prompts.forEach((prompt, i) => {
    const call = el("div", { className: "rlm-subcall" }, [
      ...labelled(prompts.length > 1 ? `Prompt ${i + 1}` : "Prompt", String(prompt)),
      ...labelled("Answer", String(answers[i] ?? ""), "output"),
    ]);
    parts.push(call);
  });
  return parts.length ? parts : [note("No prompts recorded.")];
}

function finalBody(step) {
  const turns = `${step.iterations} iteration${step.iterations === 1 ? "" : "s"}`;
  return [
    note(
      step.forced
        ? `The model ran out of iterations (${turns}) and was asked once for its best answer.`
        : `The answer was set from code after ${turns}.`,
    ),
  ];
}

function fallbackBody(step) {
  return [pre(JSON.stringify(step, null, 2))];
}

const BODIES = { code: codeBody, output: outputBody, subcall: subcallBody, final: finalBody };

function title(step, kind) {
  if (kind === "final") return step.forced ? "Forced answer" : "Final answer";
  let label = LABELS[kind] || kind.replace(/_/g, " ");
  if (kind === "subcall" && step.count > 1) label = `Sub-calls ×${step.count}`;
  if (kind === "subrlm") label = `Sub-RLM ${step.branch ?? ""}`.trim();
  return step.iteration !== undefined && step.iteration !== null ? `Iteration ${step.iteration} · ${label}` : label;
}

function summaryPreview(step, kind) {
  if (kind === "reasoning") return preview(reasoningText(step));
  if (kind === "code") return preview(step.code);
  if (kind === "output") return preview(step.error ? String(step.error).trim().split("\n").at(-1) : step.stdout ?? step.output);
  if (kind === "subcall") return preview(step.prompts?.[0]);
  if (kind === "subrlm") return preview(step.prompt);
  return "";
}

function stepElement(step) {
  const kind = stepKind(step);
  const summary = el("summary", {}, [
    el("span", { className: `rlm-kind ${kind}`, text: title(step, kind) }),
    el("span", { className: "rlm-preview", text: summaryPreview(step, kind) }),
    el("span", { className: "rlm-duration", text: duration(step.ms ?? step.duration_ms) }),
  ]);
  const isReasoning = kind === "reasoning";
  const body = el("div", { className: "rlm-body" });
  if (isReasoning) body.append(pre("", "reasoning"));
  else body.append(...(BODIES[kind] || fallbackBody)(step));
  const details = el("details", { className: `rlm-step kind-${kind.replace(/[^\w-]/g, "")}` }, [summary, body]);
  details.dataset.thinking = String(isReasoning);
  if (step.error) details.classList.add("failed");
  shown.set(details, { chars: 0, done: null });
  if (isReasoning) updateReasoning(details, step);
  return details;
}

// A sub-RLM: its prompt, then its own steps (filled in as they come), then how it ended.
function subRlmElement(step) {
  const details = stepElement({ ...step, kind: "subrlm" });
  const body = details.querySelector(".rlm-body");
  body.replaceChildren(
    ...labelled("Prompt", String(step.prompt ?? "")),
    el("div", { className: "rlm-steps rlm-substeps" }),
  );
  details.classList.add("writing");
  details.dataset.branch = String(step.branch ?? "");
  return details;
}

function endSubRlm(details, step) {
  details.classList.remove("writing");
  details.querySelector(":scope > summary .rlm-duration").textContent = duration(step.ms);
  const turns = plural(Number(step.iterations) || 0, "iteration");
  const outcome = step.outcome && step.outcome !== "answered" ? ` (${step.outcome})` : "";
  details
    .querySelector(":scope > .rlm-body")
    .append(note(`The sub-RLM ended after ${turns}${outcome}.`), ...labelled("Answer", String(step.answer ?? ""), "output"));
  if (step.outcome === "error") details.classList.add("failed");
}

function parentBranch(branch) {
  const cut = branch.lastIndexOf(".");
  return cut < 0 ? "" : branch.slice(0, cut);
}

// The step's element, put in the list of its level (a sub-RLM's start: in its parent's).
function placeStep(layout, step) {
  const kind = stepKind(step);
  if (kind !== "subrlm") {
    const element = stepElement(step);
    const branch = String(step.branch ?? "");
    (layout.levels.get(branch) || layout.levels.get("")).append(element);
    return element;
  }
  const branch = String(step.branch ?? "");
  const open = layout.subRlms.get(branch);
  if (step.phase === "end" && open) {
    endSubRlm(open, step);
    return open;
  }
  const element = subRlmElement(step);
  (layout.levels.get(parentBranch(branch)) || layout.levels.get("")).append(element);
  layout.levels.set(branch, element.querySelector(".rlm-substeps"));
  layout.subRlms.set(branch, element);
  return element;
}

// A reasoning step grows while the model writes: append only the characters not yet shown.
function updateReasoning(details, step) {
  const state = shown.get(details);
  const text = reasoningText(step);
  const body = details.querySelector(".rlm-pre.reasoning");
  if (text.length !== state.chars) {
    if (text.length > state.chars && body.firstChild) body.firstChild.appendData(text.slice(state.chars));
    else body.textContent = text;
    if (state.chars < PREVIEW_CHARS + 1) details.querySelector(".rlm-preview").textContent = preview(text);
    state.chars = text.length;
  }
  const done = Boolean(step.done);
  if (done !== state.done) {
    details.querySelector(".rlm-duration").textContent = duration(step.ms);
    details.classList.toggle("writing", !done);
    state.done = done;
  }
}

function ensureTrace(container) {
  let trace = container.querySelector(".rlm-trace");
  if (trace) return trace;
  const toggle = el("button", { type: "button", className: "rlm-thinking-toggle" });
  toggle.dataset.action = "toggle-thinking";
  trace = el("section", { className: "rlm-trace", "aria-label": "RLM trace" }, [
    el("details", { className: "rlm-trace-fold" }, [
      el("summary", { className: "rlm-summary" }),
      el("div", { className: "rlm-trace-head" }, [el("span", { className: "rlm-trace-title" }), toggle]),
      el("div", { className: "rlm-steps" }),
    ]),
  ]);
  container.prepend(trace);
  return trace;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// "Worked for 4.2 s · 3 steps · 1 sub-call": a step is one code cell the model wrote; the
// time runs from the question to the end of the answer (or, for an older stored answer, is
// the sum of the steps' own times).
export function traceSummary(steps, { startedAt, finishedAt, working } = {}) {
  let cells = 0;
  let subcalls = 0;
  let subRlms = 0;
  let stepMs = 0;
  for (const step of steps) {
    const kind = stepKind(step);
    if (kind === "code") cells++;
    if (kind === "subcall") subcalls += Number(step.count) || step.prompts?.length || 1;
    if (kind === "subrlm" && step.phase !== "end") subRlms++;
    const ms = Number(step.ms ?? step.duration_ms);
    if (Number.isFinite(ms)) stepMs += ms;
  }
  const elapsed = Number.isFinite(finishedAt) && Number.isFinite(startedAt) ? finishedAt - startedAt : stepMs;
  const parts = [working ? "Working…" : `Worked for ${(elapsed / 1000).toFixed(1)} s`, plural(cells, "step")];
  if (subcalls) parts.push(plural(subcalls, "sub-call"));
  if (subRlms) parts.push(plural(subRlms, "sub-RLM"));
  return parts.join(" · ");
}

export function renderTrace(container, steps, showThinking, timing = {}) {
  if (!steps?.length) {
    container.querySelector(".rlm-trace")?.remove();
    return;
  }
  const trace = ensureTrace(container);
  trace.classList.toggle("hide-thinking", !showThinking);
  const toggle = trace.querySelector(".rlm-thinking-toggle");
  toggle.textContent = showThinking ? "Hide thinking" : "Show thinking";
  const list = trace.querySelector(".rlm-steps");
  // Steps are only ever appended; a shorter trace means a different one: start over.
  let layout = layouts.get(list);
  if (!layout || layout.elements.length > steps.length) {
    list.replaceChildren();
    layout = { elements: [], levels: new Map([["", list]]), subRlms: new Map() };
    layouts.set(list, layout);
  }
  const lastShown = layout.elements.length - 1;
  if (lastShown >= 0 && stepKind(steps[lastShown]) === "reasoning") updateReasoning(layout.elements[lastShown], steps[lastShown]);
  for (let i = layout.elements.length; i < steps.length; i++) layout.elements.push(placeStep(layout, steps[i]));
  const thinking = steps.filter((s) => stepKind(s) === "reasoning").length;
  const counts = `${steps.length} step${steps.length === 1 ? "" : "s"}`;
  const hidden = !showThinking && thinking ? ` (${thinking} reasoning hidden)` : "";
  trace.querySelector(".rlm-trace-title").textContent = `RLM trace · ${counts}${hidden}`;
  const summary = traceSummary(steps, timing);
  const line = trace.querySelector(".rlm-summary");
  if (line.textContent !== summary) line.textContent = summary;
}
