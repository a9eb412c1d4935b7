// Export and import. JSON exports carry every branch, the pictures inline (data URIs) and the
// attached documents' texts, so a file restores everything on another browser; Markdown
// exports are for reading: the path on screen only.

import { migrate } from "./branches.js";
import { newId } from "./ids.js";
import { reasoningMarkdown } from "./render/reasoning.js";

export const FORMAT = "tinychat-conversations";
const ROLES = new Set(["user", "assistant", "system"]);
const MAX_IMPORT_CONVERSATIONS = 10000;
const MAX_DOCUMENT_CHARS = 256 * 1024 * 1024;

export async function exportJson(conversations, vault, documents = null) {
  const out = [];
  const embed = async (message) => {
    const copy = { ...message };
    delete copy.status;
    if (message.image?.id) copy.image = { ...message.image, data: await vault.get(message.image.id) };
    if (message.generated?.id) copy.generated = { ...message.generated, data: await vault.get(message.generated.id) };
    if (message.attachments?.length && documents) {
      copy.attachments = [];
      for (const a of message.attachments) copy.attachments.push({ ...a, text: await documents.getText(a.id) });
    }
    return copy;
  };
  for (const conversation of conversations) {
    const messages = [];
    for (const message of conversation.messages) messages.push(await embed(message));
    const branches = [];
    for (const message of conversation.branches || []) branches.push(await embed(message));
    const { rev: _rev, ...rest } = conversation;
    out.push({ ...rest, messages, branches });
  }
  return JSON.stringify({ format: FORMAT, version: 2, exportedAt: new Date().toISOString(), conversations: out }, null, 2);
}

// `modelFor(conversation)` names the model a conversation without its own choice uses.
export function exportMarkdown(conversations, modelFor = (c) => c.model) {
  const parts = [];
  for (const c of conversations) {
    parts.push(`# ${c.title}\n`);
    parts.push(`_${new Date(c.createdAt).toLocaleString()} · ${modelFor(c) || c.model || "default model"}_\n`);
    if (c.systemPrompt) parts.push(`> **System:** ${c.systemPrompt.replace(/\n/g, "\n> ")}\n`);
    for (const m of c.messages) {
      parts.push(`## ${m.role === "user" ? "You" : m.role === "assistant" ? "Assistant" : "System"}\n`);
      if (m.image) parts.push(`_[image attached: ${m.image.name || "image"}]_\n`);
      for (const a of m.attachments || []) parts.push(`_[document attached: ${a.name}]_\n`);
      if (m.generated) parts.push(`_[generated image: ${m.generated.prompt || ""}]_\n`);
      if (m.reasoning) parts.push(reasoningMarkdown(m));
      if (m.content) parts.push(`${m.content}\n`);
    }
    parts.push("\n---\n");
  }
  return parts.join("\n");
}

export function exportFileName(conversations, extension) {
  const stamp = new Date().toISOString().slice(0, 10);
  if (conversations.length === 1) {
    const slug = conversations[0].title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
    return `tinychat-${slug || "conversation"}-${stamp}.${extension}`;
  }
  return `tinychat-${conversations.length}-conversations-${stamp}.${extension}`;
}

class ImportError extends Error {}

function isDataImage(value) {
  return typeof value === "string" && /^data:image\/[\w+.-]+;base64,[A-Za-z0-9+/=\s]+$/.test(value);
}

function text(value, field, limit = 5_000_000) {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw new ImportError(`${field} must be text`);
  return value.slice(0, limit);
}

function validMessage(raw, where) {
  if (!raw || typeof raw !== "object") throw new ImportError(`${where} is not an object`);
  if (!ROLES.has(raw.role)) throw new ImportError(`${where} has an unknown role`);
  const message = {
    id: typeof raw.id === "string" && raw.id ? raw.id.slice(0, 64) : newId("m"),
    role: raw.role,
    content: text(raw.content, `${where}.content`),
    createdAt: Number.isFinite(raw.createdAt) ? raw.createdAt : Date.now(),
    parentId: typeof raw.parentId === "string" ? raw.parentId.slice(0, 64) : null,
  };
  if (Number.isFinite(raw.leftAt)) message.leftAt = raw.leftAt;
  const state = ["done", "cutoff", "error", "stopped"].includes(raw.state) ? raw.state : raw.state === "streaming" ? "cutoff" : undefined;
  if (state) message.state = state;
  if (raw.error && typeof raw.error.message === "string") message.error = { message: raw.error.message.slice(0, 2000), code: String(raw.error.code || "error") };
  if (typeof raw.finishReason === "string") message.finishReason = raw.finishReason.slice(0, 32);
  if (raw.usage && typeof raw.usage === "object") message.usage = raw.usage;
  if (typeof raw.reasoning === "string" && raw.reasoning) message.reasoning = raw.reasoning.slice(0, 5_000_000);
  if (Number.isFinite(raw.reasoningMs)) message.reasoningMs = raw.reasoningMs;
  if (raw.timing && typeof raw.timing === "object") {
    const { ttftMs, generationMs } = raw.timing;
    if (Number.isFinite(ttftMs) && Number.isFinite(generationMs)) message.timing = { ttftMs, generationMs };
  }
  if (Array.isArray(raw.rlm)) message.rlm = raw.rlm.filter((s) => s && typeof s === "object");
  const pictures = [];
  for (const field of ["image", "generated"]) {
    const picture = raw[field];
    if (!picture) continue;
    if (!isDataImage(picture.data)) throw new ImportError(`${where}.${field} is not an embedded image`);
    const id = newId("i");
    pictures.push({ id, data: picture.data });
    message[field] =
      field === "image"
        ? { id, type: text(picture.type, "type", 64) || "image/jpeg", name: text(picture.name, "name", 200) }
        : { id, prompt: text(picture.prompt, "prompt", 10000), name: text(picture.name, "name", 200) };
  }
  const documents = [];
  if (Array.isArray(raw.attachments)) {
    message.attachments = raw.attachments.map((a, i) => {
      if (!a || typeof a !== "object" || typeof a.text !== "string") throw new ImportError(`${where}, document ${i + 1} has no text`);
      const id = newId("d");
      const body = a.text.slice(0, MAX_DOCUMENT_CHARS);
      documents.push({ id, text: body });
      return {
        id,
        name: text(a.name, "name", 255) || `document-${i + 1}.txt`,
        type: text(a.type, "type", 100) || "text/plain",
        size: Number.isFinite(a.size) && a.size >= 0 ? a.size : body.length,
        chars: body.length,
      };
    });
  }
  return { message, pictures, documents };
}

function validConversation(raw, index) {
  const where = `conversation ${index + 1}`;
  if (!raw || typeof raw !== "object") throw new ImportError(`${where} is not an object`);
  if (!Array.isArray(raw.messages)) throw new ImportError(`${where} has no messages list`);
  if (raw.branches !== undefined && !Array.isArray(raw.branches)) throw new ImportError(`${where} has a broken branches list`);
  const pictures = [];
  const documents = [];
  const messages = raw.messages.map((m, i) => {
    const valid = validMessage(m, `${where}, message ${i + 1}`);
    pictures.push(...valid.pictures);
    documents.push(...valid.documents);
    return valid.message;
  });
  const branches = (raw.branches || []).map((m, i) => {
    const valid = validMessage(m, `${where}, branch message ${i + 1}`);
    pictures.push(...valid.pictures);
    documents.push(...valid.documents);
    return valid.message;
  });
  const now = Date.now();
  const conversation = {
    id: typeof raw.id === "string" && /^[\w-]{1,64}$/.test(raw.id) ? raw.id : "",
    title: text(raw.title, `${where}.title`, 200).trim() || "Imported chat",
    titleSetByUser: Boolean(raw.titleSetByUser),
    createdAt: Number.isFinite(raw.createdAt) ? raw.createdAt : now,
    updatedAt: Number.isFinite(raw.updatedAt) ? raw.updatedAt : now,
    systemPrompt: text(raw.systemPrompt, `${where}.systemPrompt`, 100000),
    model: typeof raw.model === "string" ? raw.model.slice(0, 200) : null,
    temperature: typeof raw.temperature === "number" && raw.temperature >= 0 && raw.temperature <= 2 ? raw.temperature : null,
    markdown: raw.markdown !== false,
    rlm: raw.rlm === true,
    maxTokens: Number.isInteger(raw.maxTokens) && raw.maxTokens > 0 ? raw.maxTokens : null,
    messages,
    branches,
  };
  return { conversation: migrate(conversation), pictures, documents };
}

// Reads an export (or a bare list or single conversation). Every conversation is checked
// before anything is stored: one bad entry rejects the file with a message saying where.
export function parseImport(textContent) {
  let data;
  try {
    data = JSON.parse(textContent);
  } catch {
    throw new ImportError("The file is not valid JSON.");
  }
  let list;
  if (Array.isArray(data)) list = data;
  else if (data && Array.isArray(data.conversations)) list = data.conversations;
  else if (data && Array.isArray(data.messages)) list = [data];
  else throw new ImportError("The file holds no TinyChat conversations.");
  if (list.length > MAX_IMPORT_CONVERSATIONS) throw new ImportError(`The file holds more than ${MAX_IMPORT_CONVERSATIONS} conversations.`);
  try {
    return list.map(validConversation);
  } catch (error) {
    if (error instanceof ImportError) throw new ImportError(`Not imported: ${error.message}.`);
    throw error;
  }
}

export { ImportError };
