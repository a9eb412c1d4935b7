// Branches: a conversation is a tree of messages, and nothing the user wrote or read is ever
// dropped. `conversation.messages` is the path on screen, root to leaf: what is sent to the
// model, searched and exported as Markdown (every other module may keep reading it as the
// conversation). `conversation.branches` holds every message that is not on that path. Each
// message names its parent (`parentId`, null at the root); the messages with one parent are
// versions of each other: regenerate, retry and edit & resend add a version, and the path
// that was shown moves to `branches`, whole, where `‹ 2/3 ›` brings it back.
//
// Pure functions over plain objects: the store calls them and saves; nothing here touches
// storage or the DOM.

export const SCHEMA_VERSION = 2;

export function allMessages(conversation) {
  return conversation.branches?.length ? [...conversation.messages, ...conversation.branches] : conversation.messages;
}

// Brings a stored conversation of any version to this shape, in place. Version 1 had no
// branches: its messages become the path, each the child of the one before.
export function migrate(conversation) {
  if (!Array.isArray(conversation.branches)) conversation.branches = [];
  let parent = null;
  for (const message of conversation.messages) {
    message.parentId = parent;
    parent = message.id;
  }
  for (const message of conversation.branches) {
    if (typeof message.parentId !== "string") message.parentId = null;
  }
  conversation.version = SCHEMA_VERSION;
  return conversation;
}

// The versions of `message` (itself included), oldest first, and where it stands among them.
export function versionsOf(conversation, message) {
  const versions = allMessages(conversation).filter((m) => m.parentId === message.parentId && m.role !== "system");
  versions.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  return { versions, index: versions.findIndex((m) => m.id === message.id) };
}

// Moves the path from `messageId` on into the branches. The caller then adds the new version,
// whose parent is the path's new last message. Returns false when the message is not shown.
export function forkAt(conversation, messageId, now = Date.now()) {
  const index = conversation.messages.findIndex((m) => m.id === messageId);
  if (index < 0) return false;
  const left = conversation.messages.splice(index);
  for (const message of left) message.leftAt = now;
  conversation.branches.push(...left);
  return true;
}

// Shows the version `messageId` and, below it, the branch that was on screen most recently.
export function switchTo(conversation, messageId, now = Date.now()) {
  const target = conversation.branches.find((m) => m.id === messageId);
  if (!target) return false;
  const index = conversation.messages.findIndex((m) => m.parentId === target.parentId);
  if (index < 0 && (target.parentId ?? null) !== (conversation.messages.at(-1)?.id ?? null)) return false;
  const left = index < 0 ? [] : conversation.messages.splice(index);
  for (const message of left) message.leftAt = now;
  const children = new Map();
  for (const message of [...conversation.branches, ...left]) {
    if (message === target) continue;
    const list = children.get(message.parentId) || [];
    list.push(message);
    children.set(message.parentId, list);
  }
  const path = [];
  for (let next = target; next; ) {
    path.push(next);
    const candidates = children.get(next.id) || [];
    next = candidates.reduce((best, m) => (!best || recency(m) > recency(best) ? m : best), null);
  }
  const onPath = new Set(path);
  conversation.branches = [...conversation.branches, ...left].filter((m) => !onPath.has(m));
  conversation.messages.push(...path);
  return true;
}

function recency(message) {
  return message.leftAt ?? message.createdAt ?? 0;
}

// Two copies of one conversation (this tab's and the one another tab saved) become one that
// loses no message of either. Fields and the path come from `newer`; a message only `older`
// has continues the path when it follows its end, else joins the branches. For a message both
// have, `preferOlder(id)` says whose copy wins (the tab streaming a message owns it).
// Mutates and returns `newer`.
export function mergeCopies(newer, older, preferOlder) {
  const olderById = new Map(allMessages(older).map((m) => [m.id, m]));
  const seen = new Set();
  const pick = (message) => {
    seen.add(message.id);
    const theirs = olderById.get(message.id);
    return theirs && preferOlder(message.id) ? theirs : message;
  };
  newer.messages = newer.messages.map(pick);
  newer.branches = (newer.branches || []).map(pick);
  for (const message of older.messages) {
    if (seen.has(message.id)) continue;
    seen.add(message.id);
    if (message.parentId === (newer.messages.at(-1)?.id ?? null)) newer.messages.push(message);
    else newer.branches.push(message);
  }
  for (const message of older.branches || []) if (!seen.has(message.id)) newer.branches.push(message);
  newer.updatedAt = Math.max(newer.updatedAt || 0, older.updatedAt || 0);
  return newer;
}
