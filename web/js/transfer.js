// Export and import. JSON exports carry the pictures inline (data URIs), so a file restores
// everything on another browser; Markdown exports are for reading.

import { newId } from "./images.js";
import { reasoningMarkdown } from "./render/reasoning.js";

export const FORMAT = "tinychat-conversations";
const ROLES = new Set(["user", "assistant", "system"]);
const MAX_IMPORT_CONVERSATIONS = 10000;

export async function exportJson(conversations, vault) {
  const out = [];
  for (const conversation of conversations) {
    const messages = [];
    for (const message of conversation.messages) {
      const copy = { ...message };
      delete copy.status;
      if (message.image?.id) copy.image = { ...message.image, data: await vault.get(message.image.id) };
      if (message.generated?.id) copy.generated = { ...message.generated, data: await vault.get(message.generated.id) };
      messages.push(copy);
    }
    out.push({ ...conversation, messages });
  }
  return JSON.stringify({ format: FORMAT, version: 1, exportedAt: new Date().toISOString(), conversations: out }, null, 2);
}

export function exportMarkdown(conversations) {
  const parts = [];
  for (const c of conversations) {
    parts.push(`# ${c.title}\n`);
    parts.push(`_${new Date(c.createdAt).toLocaleString()} · ${c.model || "default model"}_\n`);
    if (c.systemPrompt) parts.push(`> **System:** ${c.systemPrompt.replace(/\n/g, "\n> ")}\n`);
    for (const m of c.messages) {
      parts.push(`## ${m.role === "user" ? "You" : m.role === "assistant" ? "Assistant" : "System"}\n`);
      if (m.image) parts.push(`_[image attached: ${m.image.name || "image"}]_\n`);
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
  };
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
  return { message, pictures };
}

function validConversation(raw, index) {
  const where = `conversation ${index + 1}`;
  if (!raw || typeof raw !== "object") throw new ImportError(`${where} is not an object`);
  if (!Array.isArray(raw.messages)) throw new ImportError(`${where} has no messages list`);
  const pictures = [];
  const messages = raw.messages.map((m, i) => {
    const valid = validMessage(m, `${where}, message ${i + 1}`);
    pictures.push(...valid.pictures);
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
  };
  return { conversation, pictures };
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
