// The message column. Messages are <li data-id> updated in place; while an answer streams,
// its element is re-rendered at most once per animation frame, however fast events come.

import { versionsOf } from "../branches.js";
import { copyText } from "../render/code.js";
import { renderMarkdownInto, renderPlainInto, warmUpRenderer } from "../render/markdown.js";
import { renderTimeline } from "../render/timeline.js";
import { byId, el, iconButton, reconcile } from "./dom.js";
import { imageFigure, progressFrom } from "./images.js";
import { renderReasoning, reasoningSignature } from "../render/reasoning.js";
import { renderAttachmentChips } from "./attachments.js";
import { renderTrace, traceSignature } from "./rlm.js";
import { usageLine, usageSignature } from "./usage.js";

const NEAR_BOTTOM_PX = 80;
// Opening a long conversation renders the newest messages at once and the older ones as
// plain text, upgraded to markdown/code/math as they come near the viewport.
const EAGER_MESSAGES = 6;
const LAZY_MARGIN = "600px 0px";
// A user message longer than this is shown collapsed, with "Show more".
const COLLAPSE_CHARS = 1500;
const COLLAPSE_LINES = 16;

function isLong(text) {
  if (text.length > COLLAPSE_CHARS) return true;
  let lines = 1;
  for (let i = text.indexOf("\n"); i >= 0 && lines <= COLLAPSE_LINES; i = text.indexOf("\n", i + 1)) lines++;
  return lines > COLLAPSE_LINES;
}

// Looks among direct children only: a querySelector that misses walks the element's whole
// subtree, and a long answer is tens of thousands of nodes, on every frame of a stream.
function childOf(parent, className) {
  for (const child of parent.children) if (child.classList.contains(className)) return child;
  return null;
}

function partsOf(item) {
  const main = childOf(item, "message-main");
  const bubble = childOf(main, "message-bubble");
  return {
    main,
    bubble,
    extras: childOf(main, "message-extras"),
    content: childOf(bubble, "message-content"),
    footer: childOf(main, "message-footer"),
  };
}

export class ChatView {
  constructor(store, vault, viewer, actions) {
    this.store = store;
    this.vault = vault;
    this.viewer = viewer;
    this.actions = actions; // {regenerate(id), retry(id), editAndResend(id, text), switchBranch(id)}
    this.conversationId = null;
    this.busy = false; // the conversation in view is answering (store "activity")
    this.list = byId("message-list");
    this.scroller = byId("messages");
    this.empty = byId("empty-state");
    this.pending = new Set();
    this.frame = 0;
    this.rendered = new WeakMap(); // element → what it last showed, to skip needless work
    this.stickToBottom = true;
    this.expanded = new Set(); // ids of long user messages the reader opened
    this.deferred = new WeakSet(); // items shown as plain text until they near the viewport
    this.lazy = new IntersectionObserver((entries) => this.renderNear(entries), {
      root: this.scroller,
      rootMargin: LAZY_MARGIN,
    });
    this.jump = byId("jump-latest");
    this.jump.addEventListener("click", () => {
      this.stickToBottom = true;
      this.scrollToBottom();
      this.showJump();
    });

    store.addEventListener("conversation", (e) => e.detail.id === this.conversationId && this.renderAll());
    store.addEventListener("message", (e) => {
      if (e.detail.conversationId === this.conversationId) this.schedule(e.detail.messageId);
    });
    store.addEventListener("settings", () => this.renderAll());
    store.addEventListener("activity", (e) => {
      if (e.detail.conversationId === this.conversationId) this.setBusy(e.detail.busy);
    });
    this.scroller.addEventListener("scroll", () => {
      const gap = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
      this.stickToBottom = gap < NEAR_BOTTOM_PX;
      this.showJump();
    });
    this.list.addEventListener("click", (event) => this.onClick(event));
    if (window.requestIdleCallback) warmUpRenderer((step) => requestIdleCallback(step, { timeout: 2000 }));
    else warmUpRenderer();
  }

  show(conversationId) {
    this.conversationId = conversationId;
    this.busy = this.store.isAnswering(conversationId);
    this.lazy.disconnect();
    this.list.replaceChildren();
    this.stickToBottom = true;
    this.renderAll({ lazily: true });
    this.scrollToBottom();
  }

  renderNear(entries) {
    const conversation = this.store.get(this.conversationId);
    if (!conversation) return;
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const item = entry.target;
      this.lazy.unobserve(item);
      if (!this.deferred.has(item)) continue;
      this.deferred.delete(item);
      const message = conversation.messages.find((m) => m.id === item.dataset.id);
      if (message) this.update(item, message, conversation);
    }
    if (this.stickToBottom) this.scrollToBottom();
  }

  // A placeholder that reads right (plain text) and costs almost nothing to build.
  defer(item, message) {
    this.deferred.add(item);
    const { content } = partsOf(item);
    content.replaceChildren(el("div", { className: "plain-text", text: message.content }));
    this.lazy.observe(item);
  }

  setBusy(busy) {
    if (this.busy === busy) return;
    this.busy = busy;
    this.renderAll();
  }

  schedule(messageId) {
    this.pending.add(messageId);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const conversation = this.store.get(this.conversationId);
    if (!conversation) return;
    for (const id of this.pending) {
      const message = conversation.messages.find((m) => m.id === id);
      const item = this.itemFor(id);
      if (message && item) this.update(item, message, conversation);
    }
    this.pending.clear();
    if (this.stickToBottom) this.scrollToBottom();
    this.showJump();
  }

  // "Jump to latest" appears while the reader is away from the end of a growing answer, or
  // far from the end of a long conversation.
  showJump() {
    const gap = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
    const away = this.busy ? !this.stickToBottom : gap > this.scroller.clientHeight;
    if (this.jump.hidden === !away) return;
    this.jump.hidden = !away;
  }

  itemFor(messageId) {
    for (const item of this.list.children) if (item.dataset.id === messageId) return item;
    return null;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  renderAll({ lazily = false } = {}) {
    const conversation = this.store.get(this.conversationId);
    const messages = conversation ? conversation.messages.filter((m) => m.role !== "system") : [];
    this.empty.hidden = messages.length > 0;
    const eagerFrom = lazily ? messages.length - EAGER_MESSAGES : 0;
    reconcile(this.list, messages, {
      key: (message) => message.id,
      create: (message) => this.create(message),
      update: (item, message, index, fresh) => {
        if (fresh && index < eagerFrom && message.state !== "streaming") this.defer(item, message);
        else if (!this.deferred.has(item)) this.update(item, message, conversation);
      },
      remove: (item) => this.lazy.unobserve(item),
    });
    this.scroller.setAttribute("aria-busy", String(this.busy));
    if (this.stickToBottom) this.scrollToBottom();
    this.showJump();
  }

  create(message) {
    const who = message.role === "user" ? "You" : "Assistant";
    const item = el("li", { className: `message ${message.role}` }, [
      el("div", { className: "message-avatar", "aria-hidden": "true", text: message.role === "user" ? "You" : "AI" }),
      el("div", { className: "message-main" }, [
        el("h3", { className: "visually-hidden", text: `${who} said` }),
        el("div", { className: "message-extras" }),
        el("div", { className: "message-bubble" }, [el("div", { className: "message-content" })]),
        el("div", { className: "message-footer" }),
      ]),
    ]);
    return item;
  }

  isLastAssistant(message, conversation) {
    const last = conversation.messages.at(-1);
    return message.role === "assistant" && last?.id === message.id;
  }

  update(item, message, conversation) {
    this.deferred.delete(item);
    const streaming = message.state === "streaming";
    const showThinking = this.store.settings.showRlmThinking;
    const markdown = conversation.markdown !== false;
    const versions = versionsOf(conversation, message);
    const key = [
      `${versions.index}/${versions.versions.length}`,
      message.content.length,
      message.state,
      message.status,
      message.error?.message,
      traceSignature(message.rlm),
      reasoningSignature(message),
      usageSignature(message),
      message.generated?.id,
      markdown,
      showThinking,
      this.isLastAssistant(message, conversation),
      this.busy,
      item.classList.contains("editing"),
      this.expanded.has(message.id),
    ].join("|");
    if (this.rendered.get(item) === key) return;
    this.rendered.set(item, key);
    item.classList.toggle("streaming", streaming);
    if (item.classList.contains("editing")) return;

    const { main, bubble, extras, content, footer } = partsOf(item);
    if (message.role === "user") {
      this.ensureUploadedImage(extras, message);
      renderAttachmentChips(extras, message);
      renderPlainInto(content, message.content);
      this.updateCollapse(main, bubble, message);
    } else {
      renderTrace(extras, message.rlm, showThinking, {
        startedAt: message.createdAt,
        finishedAt: message.finishedAt,
        working: streaming,
      });
      renderTimeline(extras, message);
      renderReasoning(extras, message, streaming);
      this.ensureGeneratedImage(extras, message);
      if (markdown) renderMarkdownInto(content, message.content);
      else renderPlainInto(content, message.content);
    }
    bubble.hidden = message.role === "assistant" && !message.content && !streaming && !message.status;
    this.updateStatus(bubble, message, streaming);
    this.updateProblem(main, footer, message);
    this.updateFooter(footer, message, conversation, versions);
  }

  updateCollapse(main, bubble, message) {
    let toggle = childOf(main, "show-more");
    if (!isLong(message.content)) {
      bubble.classList.remove("collapsed");
      toggle?.remove();
      return;
    }
    const open = this.expanded.has(message.id);
    if (!toggle) {
      toggle = el("button", { type: "button", className: "show-more" });
      toggle.dataset.action = "toggle-long";
      bubble.after(toggle);
    }
    bubble.classList.toggle("collapsed", !open);
    toggle.textContent = open ? "Show less" : `Show more (${message.content.length.toLocaleString()} characters)`;
    toggle.setAttribute("aria-expanded", String(open));
  }

  ensureUploadedImage(extras, message) {
    if (!message.image?.id || extras.querySelector(".message-image")) return;
    extras.append(
      imageFigure({
        kind: "uploaded",
        imageId: message.image.id,
        alt: message.image.name || "Attached image",
        name: message.image.name || "image.jpg",
        load: (id) => this.vault.get(id),
        viewer: this.viewer,
      }),
    );
  }

  ensureGeneratedImage(extras, message) {
    if (!message.generated?.id || extras.querySelector(".message-image")) return;
    extras.append(
      imageFigure({
        kind: "generated",
        imageId: message.generated.id,
        alt: message.generated.prompt || "Generated image",
        name: message.generated.name,
        load: (id) => this.vault.get(id),
        viewer: this.viewer,
      }),
    );
  }

  updateStatus(bubble, message, streaming) {
    let status = childOf(bubble, "message-status");
    const text = streaming ? message.status : "";
    const waiting = streaming && !message.content && !text && !message.reasoning;
    if (!text && !waiting) {
      status?.remove();
      return;
    }
    if (!status) {
      status = el("div", { className: "message-status", role: "status" });
      bubble.prepend(status);
    }
    status.replaceChildren();
    if (waiting) {
      status.append(el("span", { className: "typing", "aria-label": "The assistant is answering" }, [el("i"), el("i"), el("i")]));
      return;
    }
    const percent = progressFrom(text);
    const iteration = /iteration\s+(\d+)\s*(?:\/|of)\s*(\d+)/i.exec(text);
    if (iteration) status.append(el("span", { className: "badge", text: `Iteration ${iteration[1]}/${iteration[2]}` }));
    else status.append(el("span", { className: "status-text", text }));
    if (percent !== null) {
      const bar = el("progress", { max: "100", value: String(percent), "aria-label": text });
      status.append(bar);
    }
  }

  updateProblem(main, footer, message) {
    let box = childOf(main, "message-problem");
    const problem = this.problemFor(message);
    if (!problem) {
      box?.remove();
      return;
    }
    if (!box) {
      box = el("div", { className: "message-problem" });
      main.insertBefore(box, footer);
    }
    box.className = `message-problem ${problem.kind}`;
    box.replaceChildren(el("span", { text: problem.text }));
    if (problem.retry) {
      const retry = el("button", { type: "button", className: "chip", text: "Retry" });
      retry.dataset.action = "retry";
      box.append(retry);
    }
    box.setAttribute("role", problem.kind === "error" ? "alert" : "note");
  }

  problemFor(message) {
    if (message.state === "error") return { kind: "error", text: message.error?.message || "Something went wrong.", retry: true };
    if (message.state === "cutoff") return { kind: "cutoff", text: "The answer was cut off: the connection closed before it finished.", retry: true };
    if (message.state === "stopped") return { kind: "stopped", text: "Stopped.", retry: false };
    if (message.finishReason === "length") return { kind: "cutoff", text: "The answer reached the length limit.", retry: false };
    return null;
  }

  updateFooter(footer, message, conversation, versions) {
    footer.replaceChildren();
    if (message.state === "streaming") return;
    const busy = this.busy;
    if (versions.versions.length > 1) footer.append(this.versionSwitcher(versions, busy));
    if (message.content) footer.append(iconButton("copy", "Copy message", "copy"));
    if (message.role === "user" && !busy) footer.append(iconButton("edit", "Edit and resend", "edit"));
    if (this.isLastAssistant(message, conversation) && !busy) {
      footer.append(iconButton("regenerate", "Regenerate answer", "regenerate"));
    }
    const usage = usageLine(message, conversation, this.isLastAssistant(message, conversation));
    if (usage) footer.append(usage);
  }

  // `‹ 2/3 ›`: the versions of a message (regenerated, retried or edited); switching is
  // refused while the conversation answers, whose answer belongs to the path on screen.
  versionSwitcher({ versions, index }, busy) {
    const previous = iconButton("chevron-left", "Previous version", "version", { disabled: busy || index === 0 });
    const next = iconButton("chevron-right", "Next version", "version", { disabled: busy || index === versions.length - 1 });
    if (index > 0) previous.dataset.target = versions[index - 1].id;
    if (index < versions.length - 1) next.dataset.target = versions[index + 1].id;
    const label = el("span", { className: "version-label", text: `${index + 1}/${versions.length}` });
    label.setAttribute("aria-label", `Version ${index + 1} of ${versions.length}`);
    return el("span", { className: "versions", role: "group", "aria-label": "Versions of this message" }, [previous, label, next]);
  }

  async onClick(event) {
    const button = event.target.closest("button[data-action]");
    // Only our own controls act: anything inside rendered content is never an app control.
    if (!button || button.closest(".message-content")) return;
    const item = button.closest("li.message");
    const id = item?.dataset.id;
    const message = this.store.findMessage(this.conversationId, id);
    if (!message) return;
    switch (button.dataset.action) {
      case "copy":
        try {
          await copyText(message.content);
          button.classList.add("done");
          button.setAttribute("aria-label", "Copied");
        } catch {
          button.classList.add("failed");
        }
        setTimeout(() => {
          button.classList.remove("done", "failed");
          button.setAttribute("aria-label", "Copy message");
        }, 1500);
        break;
      case "edit":
        this.startEditing(item, message);
        break;
      case "regenerate":
        this.actions.regenerate(id);
        break;
      case "retry":
        this.actions.retry(id);
        break;
      case "toggle-long":
        if (this.expanded.has(id)) this.expanded.delete(id);
        else this.expanded.add(id);
        this.update(item, message, this.store.get(this.conversationId));
        break;
      case "version":
        if (button.dataset.target) this.actions.switchBranch(button.dataset.target);
        break;
      case "toggle-thinking":
        this.store.saveSettings({ showRlmThinking: !this.store.settings.showRlmThinking });
        break;
    }
  }

  startEditing(item, message) {
    item.classList.add("editing");
    const bubble = item.querySelector(".message-bubble");
    const area = el("textarea", { className: "edit-area", "aria-label": "Edit your message", rows: "3" });
    area.value = message.content;
    const save = el("button", { type: "button", className: "primary", text: "Save & send" });
    const cancel = el("button", { type: "button", className: "secondary", text: "Cancel" });
    const editor = el("div", { className: "message-editor" }, [area, el("div", { className: "editor-actions" }, [cancel, save])]);
    bubble.hidden = true;
    item.querySelector(".message-footer").hidden = true;
    bubble.after(editor);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
    const finish = () => {
      editor.remove();
      item.classList.remove("editing");
      bubble.hidden = false;
      item.querySelector(".message-footer").hidden = false;
      this.rendered.delete(item);
    };
    cancel.addEventListener("click", () => {
      finish();
      this.renderAll();
    });
    save.addEventListener("click", () => {
      const text = area.value.trim();
      if (!text && !message.image) return;
      finish();
      this.actions.editAndResend(message.id, text);
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        save.click();
      } else if (event.key === "Escape") {
        event.stopPropagation();
        cancel.click();
      }
    });
  }
}
