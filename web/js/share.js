// Share links: the path on screen of one conversation, packed into the URL *fragment*
// (`#share=…`), which browsers never send to the server. The JSON is compressed with
// CompressionStream ("deflate-raw") and, with a passphrase, encrypted with AES-GCM under a
// key derived by PBKDF2 (Web Crypto). Layout after `#share=`:
//   "z." + base64url(deflated JSON)                                  plain
//   "e." + base64url(salt[16] ‖ iv[12] ‖ AES-GCM(deflated JSON))      with a passphrase
// Pictures go in only when asked for (they make links large). A link longer than browsers
// and chat apps reliably accept is refused when it is made, with the reason.

export const SHARE_PREFIX = "#share=";
// Chromium accepts URLs up to 2 MB, Firefox's address bar about 1 MB: stay under both.
export const MAX_SHARE_URL_CHARS = 1_000_000;
const PBKDF2_ITERATIONS = 250_000;
const FORMAT = 1;

export class ShareError extends Error {}

function toBase64Url(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function through(bytes, transform) {
  const stream = new Blob([bytes]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function keyFor(passphrase, salt) {
  const material = await crypto.subtle.importKey("raw", new TextEncoder().encode(passphrase), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", salt, iterations: PBKDF2_ITERATIONS, hash: "SHA-256" },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

// What a shared conversation carries: the path on screen, no ids of this browser's storage.
export async function sharedPayload(conversation, { pictures = false, loadPicture = async () => null, model = null } = {}) {
  const messages = [];
  for (const m of conversation.messages) {
    if (m.role === "system") continue;
    const entry = { role: m.role, content: m.content || "", createdAt: m.createdAt };
    if (m.state && m.state !== "done") entry.state = m.state === "streaming" ? "cutoff" : m.state;
    if (m.error?.message) entry.error = { message: m.error.message, code: m.error.code || "error" };
    if (Array.isArray(m.rlm) && m.rlm.length) entry.rlm = m.rlm;
    for (const field of ["image", "generated"]) {
      const picture = m[field];
      if (!picture) continue;
      const data = pictures && picture.id ? await loadPicture(picture.id) : null;
      entry[field] = { name: picture.name || "", prompt: picture.prompt || "", type: picture.type || "", ...(data ? { data } : {}) };
    }
    messages.push(entry);
  }
  return {
    format: FORMAT,
    title: conversation.title,
    model: model || conversation.model || null,
    systemPrompt: conversation.systemPrompt || "",
    markdown: conversation.markdown !== false,
    createdAt: conversation.createdAt,
    messages,
  };
}

export async function encodeShare(payload, passphrase = "") {
  const packed = await through(new TextEncoder().encode(JSON.stringify(payload)), new CompressionStream("deflate-raw"));
  if (!passphrase) return `${SHARE_PREFIX}z.${toBase64Url(packed)}`;
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await keyFor(passphrase, salt), packed));
  const out = new Uint8Array(salt.length + iv.length + sealed.length);
  out.set(salt, 0);
  out.set(iv, salt.length);
  out.set(sealed, salt.length + iv.length);
  return `${SHARE_PREFIX}e.${toBase64Url(out)}`;
}

export function isShareFragment(hash) {
  return typeof hash === "string" && hash.startsWith(SHARE_PREFIX);
}

export function needsPassphrase(hash) {
  return isShareFragment(hash) && hash.slice(SHARE_PREFIX.length).startsWith("e.");
}

// Reads a fragment back; a wrong passphrase or a damaged link is a ShareError with the reason.
export async function decodeShare(hash, passphrase = "") {
  if (!isShareFragment(hash)) throw new ShareError("This is not a TinyChat share link.");
  const body = hash.slice(SHARE_PREFIX.length);
  let bytes;
  try {
    bytes = fromBase64Url(body.slice(2));
  } catch {
    throw new ShareError("The share link is damaged (it may have been cut when it was copied).");
  }
  if (body.startsWith("e.")) {
    if (bytes.length < 29) throw new ShareError("The share link is damaged.");
    try {
      const key = await keyFor(passphrase, bytes.subarray(0, 16));
      bytes = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.subarray(16, 28) }, key, bytes.subarray(28)));
    } catch {
      throw new ShareError("That passphrase does not open this link.");
    }
  } else if (!body.startsWith("z.")) {
    throw new ShareError("This share link was made by a newer TinyChat.");
  }
  let payload;
  try {
    payload = JSON.parse(new TextDecoder().decode(await through(bytes, new DecompressionStream("deflate-raw"))));
  } catch {
    throw new ShareError("The share link is damaged (it may have been cut when it was copied).");
  }
  if (!payload || !Array.isArray(payload.messages)) throw new ShareError("The share link holds no conversation.");
  return payload;
}

// The payload as an export file holds it, so the import's checks (transfer.js) apply to it.
export function asImportable(payload) {
  let parent = null;
  const messages = payload.messages.map((m, i) => {
    const id = `m-shared-${i}`;
    const message = { ...m, id, parentId: parent };
    parent = id;
    for (const field of ["image", "generated"]) if (message[field] && !message[field].data) delete message[field];
    return message;
  });
  return {
    id: "shared",
    title: payload.title,
    systemPrompt: payload.systemPrompt,
    model: payload.model,
    markdown: payload.markdown,
    createdAt: payload.createdAt,
    messages,
  };
}
