// Conversations and settings, kept in localStorage (one key per conversation, so a save
// writes only what changed). The store is an EventTarget:
//   "list"     the set, order or titles of conversations changed (sidebar)
//   "conversation" {id}         a conversation's settings or messages changed (chat view)
//   "message"  {conversationId, messageId}  one message changed (streaming)
//   "settings" the user's settings changed
//   "activity" {conversationId, busy}   a conversation started or finished answering
//   "notice"   {message, kind}  something the user should be told (kind "info" or "error")
//   "storage-error" {message}   something could not be saved; it stays in memory
// Another tab's saves arrive through the `storage` event (see watch) and are merged in, never
// overwritten: each saved copy carries a `rev`, and a save that finds a rev it has not seen
// first merges that copy (branches.js mergeCopies). Messages form a tree (see branches.js):
// `messages` is the path on screen, `branches` the rest.

import { SCHEMA_VERSION, allMessages, forkAt, mergeCopies, migrate, switchTo } from "./branches.js";
import { newId } from "./ids.js";

const PREFIX = "tinychat.conversation.";
const SETTINGS_KEY = "tinychat.settings";
const STREAM_SAVE_DELAY_MS = 1000;

export const DEFAULT_SETTINGS = Object.freeze({
  theme: "system",
  model: null,
  temperature: null,
  markdown: true,
  showRlmThinking: true,
  presets: [], // prompt presets, see ui/presets.js
});

function isQuotaError(error) {
  return error instanceof DOMException && (error.name === "QuotaExceededError" || error.code === 22);
}

export function titleFrom(text) {
  const line = String(text || "").replace(/\s+/g, " ").trim();
  if (!line) return "New chat";
  return line.length > 60 ? line.slice(0, 57) + "…" : line;
}

export function blankConversation(settings, overrides = {}) {
  const now = Date.now();
  return {
    id: newId("c"),
    title: "New chat",
    titleSetByUser: false,
    createdAt: now,
    updatedAt: now,
    systemPrompt: "",
    model: settings.model,
    temperature: settings.temperature,
    markdown: settings.markdown,
    rlm: false,
    version: SCHEMA_VERSION,
    messages: [],
    branches: [],
    ...overrides,
  };
}

export class Store extends EventTarget {
  constructor(storage = window.localStorage) {
    super();
    this.storage = storage;
    this.conversations = new Map();
    this.settings = { ...DEFAULT_SETTINGS };
    this.unsaved = new Set();
    this.saveTimers = new Map();
    this.settingsUnsaved = false;
    this.revs = new Map(); // conversation id → the rev of the copy in storage this tab knows
    this.live = new Set(); // ids of the messages this tab is streaming into (it owns them)
    this.answering = new Set(); // ids of the conversations with an answer streaming in this tab
  }

  // Follows the other tabs' saves. Called once by the app (tests build stores without it).
  watch(target = window) {
    target.addEventListener("storage", (event) => {
      if (event.storageArea && event.storageArea !== this.storage) return;
      if (event.key === null) this.reloadAll();
      else if (event.key === SETTINGS_KEY) this.reloadSettings(event.newValue);
      else if (event.key.startsWith(PREFIX)) this.receive(event.key.slice(PREFIX.length), event.newValue);
    });
  }

  reloadSettings(raw) {
    try {
      this.settings = { ...DEFAULT_SETTINGS, ...JSON.parse(raw || "{}") };
    } catch {
      return;
    }
    this.emit("settings");
  }

  reloadAll() {
    for (const id of [...this.conversations.keys()]) this.receive(id, this.storage.getItem(PREFIX + id));
  }

  // Another tab saved (or deleted) conversation `id`: take its copy, keeping what only this
  // tab has and the messages it is streaming.
  receive(id, raw) {
    const local = this.conversations.get(id);
    if (raw === null) {
      if (!local) return;
      this.conversations.delete(id);
      this.revs.delete(id);
      this.emit("list");
      this.emit("conversation", { id, removed: true });
      return;
    }
    const incoming = readConversation(raw);
    if (!incoming) return;
    this.revs.set(id, incoming.rev);
    if (local) {
      const merged = mergeCopies(incoming, local, (messageId) => this.live.has(messageId));
      Object.assign(local, merged);
    } else {
      this.conversations.set(id, incoming);
    }
    this.emit("conversation", { id });
    this.emit("list");
  }

  load() {
    try {
      const raw = this.storage.getItem(SETTINGS_KEY);
      if (raw) this.settings = { ...DEFAULT_SETTINGS, ...JSON.parse(raw) };
    } catch {
      // Broken settings fall back to the defaults; conversations are read independently.
    }
    for (let i = 0; i < this.storage.length; i++) {
      const key = this.storage.key(i);
      if (!key?.startsWith(PREFIX)) continue;
      const conversation = readConversation(this.storage.getItem(key));
      if (conversation) {
        // A stream cannot survive a reload: whatever was in flight is now cut off.
        for (const message of allMessages(conversation)) {
          if (message.state === "streaming") message.state = "cutoff";
          delete message.status;
        }
        this.conversations.set(conversation.id, conversation);
        this.revs.set(conversation.id, conversation.rev);
      }
    }
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  notify(message, kind = "info") {
    this.emit("notice", { message, kind });
  }

  reportStorageError(error) {
    const message = isQuotaError(error)
      ? "Browser storage is full: this conversation is kept in memory but not saved. Export it or delete old conversations to free space."
      : `Could not save to browser storage (${error.message}). The conversation is kept in memory.`;
    this.emit("storage-error", { message });
  }

  // ---- persistence -------------------------------------------------------------------

  // Writes one conversation. When storage holds a copy this tab has not seen (another tab
  // saved since), that copy is merged in first, so neither tab's messages are lost.
  persist(id) {
    const conversation = this.conversations.get(id);
    try {
      if (conversation) {
        this.mergeUnseenCopy(conversation);
        conversation.rev = newId("r");
        // `rev` first, so a later save can tell a foreign copy from the first bytes.
        this.storage.setItem(PREFIX + id, JSON.stringify({ rev: conversation.rev, ...conversation }));
        this.revs.set(id, conversation.rev);
      } else {
        this.storage.removeItem(PREFIX + id);
        this.revs.delete(id);
      }
      this.unsaved.delete(id);
    } catch (error) {
      this.unsaved.add(id);
      this.reportStorageError(error);
      return false;
    }
    // Something was freed or fits again: retry what failed before.
    for (const other of [...this.unsaved]) {
      if (other === id) continue;
      try {
        const pending = this.conversations.get(other);
        if (pending) {
          this.mergeUnseenCopy(pending);
          this.storage.setItem(PREFIX + other, JSON.stringify({ rev: pending.rev, ...pending }));
          this.revs.set(other, pending.rev);
        }
        this.unsaved.delete(other);
      } catch {
        break;
      }
    }
    return true;
  }

  mergeUnseenCopy(conversation) {
    const known = this.revs.get(conversation.id);
    const raw = this.storage.getItem(PREFIX + conversation.id);
    if (raw === null || (known && raw.startsWith(`{"rev":"${known}"`))) return;
    const stored = readConversation(raw);
    // Ours is the newer copy; theirs wins only for a message another tab is streaming.
    if (stored && stored.rev !== known) mergeCopies(conversation, stored, (messageId) => !this.live.has(messageId));
  }

  persistSoon(id) {
    // While streaming, saving every token would serialise the whole conversation hundreds
    // of times a second; once a second is enough, and the stream's end saves at once.
    if (this.saveTimers.has(id)) return;
    this.saveTimers.set(
      id,
      setTimeout(() => {
        this.saveTimers.delete(id);
        this.persist(id);
      }, STREAM_SAVE_DELAY_MS),
    );
  }

  flush(id) {
    clearTimeout(this.saveTimers.get(id));
    this.saveTimers.delete(id);
    return this.persist(id);
  }

  get hasUnsaved() {
    return this.unsaved.size > 0 || this.saveTimers.size > 0;
  }

  saveSettings(patch) {
    Object.assign(this.settings, patch);
    try {
      this.storage.setItem(SETTINGS_KEY, JSON.stringify(this.settings));
    } catch (error) {
      this.reportStorageError(error);
    }
    this.emit("settings");
  }

  // ---- conversations ---------------------------------------------------------------

  get(id) {
    return this.conversations.get(id) || null;
  }

  list(query = "") {
    const needle = query.trim().toLowerCase();
    const all = [...this.conversations.values()].sort((a, b) => b.updatedAt - a.updatedAt);
    if (!needle) return all;
    return all.filter(
      (c) =>
        c.title.toLowerCase().includes(needle) ||
        c.systemPrompt?.toLowerCase().includes(needle) ||
        c.messages.some((m) => String(m.content || "").toLowerCase().includes(needle)),
    );
  }

  create(overrides = {}) {
    const conversation = blankConversation(this.settings, overrides);
    this.conversations.set(conversation.id, conversation);
    this.persist(conversation.id);
    this.emit("list");
    return conversation;
  }

  update(id, patch, { touch = false } = {}) {
    const conversation = this.conversations.get(id);
    if (!conversation) return null;
    Object.assign(conversation, patch);
    if (touch) conversation.updatedAt = Date.now();
    this.persist(id);
    this.emit("conversation", { id });
    if ("title" in patch || touch) this.emit("list");
    return conversation;
  }

  rename(id, title) {
    const clean = String(title).replace(/\s+/g, " ").trim().slice(0, 200);
    if (!clean) return;
    this.update(id, { title: clean, titleSetByUser: true });
  }

  remove(id) {
    const conversation = this.conversations.get(id);
    if (!conversation) return [];
    this.conversations.delete(id);
    this.persist(id);
    this.emit("list");
    return imageIdsOf(conversation);
  }

  clearAll() {
    const imageIds = [];
    for (const id of [...this.conversations.keys()]) imageIds.push(...this.remove(id));
    return imageIds;
  }

  // ---- messages --------------------------------------------------------------------

  addMessage(conversationId, message) {
    const conversation = this.conversations.get(conversationId);
    const parentId = conversation.messages.at(-1)?.id ?? null;
    const full = { id: newId("m"), createdAt: Date.now(), content: "", ...message, parentId };
    if (full.state === "streaming") this.live.add(full.id);
    conversation.messages.push(full);
    conversation.updatedAt = Date.now();
    if (full.role === "user" && !conversation.titleSetByUser && conversation.messages.length <= 2) {
      conversation.title = titleFrom(full.content || full.image?.name || "Image");
    }
    this.persist(conversationId);
    this.emit("conversation", { id: conversationId });
    this.emit("list");
    return full;
  }

  // Looks on the path first, then in the branches (an answer keeps streaming into a version
  // the user switched away from).
  findMessage(conversationId, messageId) {
    const conversation = this.conversations.get(conversationId);
    if (!conversation) return null;
    return conversation.messages.find((m) => m.id === messageId) || conversation.branches?.find((m) => m.id === messageId) || null;
  }

  // `streaming: true` defers the save (see persistSoon); the final update saves at once.
  updateMessage(conversationId, messageId, patch, { streaming = false } = {}) {
    if (!streaming) this.live.delete(messageId);
    const message = this.findMessage(conversationId, messageId);
    if (!message) return null;
    Object.assign(message, patch);
    if (streaming) this.persistSoon(conversationId);
    else {
      this.conversations.get(conversationId).updatedAt = Date.now();
      this.flush(conversationId);
      this.emit("list");
    }
    this.emit("message", { conversationId, messageId });
    return message;
  }

  appendContent(conversationId, messageId, text) {
    const message = this.findMessage(conversationId, messageId);
    if (!message) return;
    if (message.reasoning && message.reasoningMs === undefined) message.reasoningMs = Date.now() - message.reasoningStartedAt;
    message.content += text;
    this.persistSoon(conversationId);
    this.emit("message", { conversationId, messageId });
  }

  // The model's reasoning, kept with the message (and its exports), never sent back to it.
  // Its duration runs from the first piece to the answer's first piece (appendContent).
  appendReasoning(conversationId, messageId, text) {
    const message = this.findMessage(conversationId, messageId);
    if (!message) return;
    if (!message.reasoning) message.reasoningStartedAt = Date.now();
    message.reasoning = (message.reasoning || "") + text;
    this.persistSoon(conversationId);
    this.emit("message", { conversationId, messageId });
  }

  // Adds one `rlm` event to a message's trace, merging reasoning deltas in place (see
  // mergeRlmStep); saved like streamed content, at most once a second.
  appendRlmStep(conversationId, messageId, step) {
    const message = this.findMessage(conversationId, messageId);
    if (!message || !step || typeof step !== "object") return;
    message.rlm = mergeRlmStep(message.rlm || [], step);
    this.persistSoon(conversationId);
    this.emit("message", { conversationId, messageId });
  }

  // Regenerate, retry, edit & resend: the path from `messageId` on becomes a branch; the
  // next addMessage adds the new version. Returns false when the message is not shown.
  fork(conversationId, messageId) {
    const conversation = this.conversations.get(conversationId);
    if (!conversation || !forkAt(conversation, messageId)) return false;
    conversation.updatedAt = Date.now();
    this.persist(conversationId);
    this.emit("conversation", { id: conversationId });
    return true;
  }

  // `‹ 2/3 ›`: shows another version of a message and the branch below it.
  switchBranch(conversationId, messageId) {
    const conversation = this.conversations.get(conversationId);
    if (!conversation || !switchTo(conversation, messageId)) return false;
    this.persist(conversationId);
    this.emit("conversation", { id: conversationId });
    return true;
  }

  // ---- answering -------------------------------------------------------------------

  // The session marks a conversation busy while its answer streams; the views follow
  // "activity" (Send/Stop, the sidebar's badge, the message actions).
  setAnswering(conversationId, busy) {
    if (this.answering.has(conversationId) === busy) return;
    if (busy) this.answering.add(conversationId);
    else this.answering.delete(conversationId);
    this.emit("activity", { conversationId, busy });
  }

  isAnswering(conversationId) {
    return Boolean(conversationId) && this.answering.has(conversationId);
  }

  // ---- import ----------------------------------------------------------------------

  // Adds validated conversations. An id already present with different content is added as a
  // copy under a new id; an identical one is skipped. Nothing existing is ever overwritten.
  merge(conversations) {
    const report = { added: 0, copies: 0, duplicates: 0 };
    for (const incoming of conversations) {
      const existing = this.conversations.get(incoming.id);
      if (existing && sameContent(existing, incoming)) {
        report.duplicates++;
        continue;
      }
      const conversation = migrate({ ...incoming });
      if (existing || !conversation.id) {
        conversation.id = newId("c");
        conversation.title = `${incoming.title} (imported)`;
        report.copies++;
      } else {
        report.added++;
      }
      this.conversations.set(conversation.id, conversation);
      this.persist(conversation.id);
    }
    this.emit("list");
    return report;
  }
}

// rlm-service streams a root-model turn as many {kind: "reasoning", iteration, delta} events and
// one {kind: "reasoning", iteration, done, ms, finish_reason}. The trace keeps them as ONE step
// per turn, {kind, iteration, text, done, ms, finish_reason}, so storage holds merged steps, not
// every delta. Other kinds are kept as sent. Only the last step ever changes: that is what lets
// the view update the trace in place. Mutates and returns `steps`.
export function mergeRlmStep(steps, step) {
  const kind = step.kind ?? step.type;
  const merging = kind === "reasoning" && ("delta" in step || step.done === true);
  if (!merging) {
    steps.push(step);
    return steps;
  }
  const last = steps.at(-1);
  const open =
    last &&
    (last.kind ?? last.type) === "reasoning" &&
    last.iteration === step.iteration &&
    last.branch === step.branch &&
    !last.done;
  const target = open ? last : { kind: "reasoning", iteration: step.iteration, text: "" };
  // A sub-RLM's turn keeps its level, so the trace can nest it under its sub-RLM.
  if (!open && step.branch !== undefined) Object.assign(target, { depth: step.depth, branch: step.branch });
  if (!open) steps.push(target);
  if (typeof step.delta === "string") target.text += step.delta;
  if (step.done === true) {
    target.done = true;
    if (step.ms !== undefined) target.ms = step.ms;
    if (step.finish_reason !== undefined) target.finish_reason = step.finish_reason;
    if (step.usage !== undefined) target.usage = step.usage;
    if (step.t !== undefined) target.t = step.t;
  }
  return steps;
}

export function imageIdsOf(conversation) {
  const ids = [];
  for (const m of allMessages(conversation)) {
    if (m.image?.id) ids.push(m.image.id);
    if (m.generated?.id) ids.push(m.generated.id);
  }
  return ids;
}

function sameContent(a, b) {
  const mine = allMessages(a);
  const theirs = allMessages(b);
  if (mine.length !== theirs.length) return false;
  return mine.every((m, i) => m.role === theirs[i].role && m.content === theirs[i].content);
}

// A stored conversation, brought to the current shape, or null when it is unreadable (one
// broken entry must never hide the others).
function readConversation(raw) {
  let conversation;
  try {
    conversation = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!conversation?.id || !Array.isArray(conversation.messages)) return null;
  migrate(conversation);
  return conversation;
}
