// Ids for conversations, messages, pictures, documents and saves. getRandomValues, unlike
// randomUUID, also works on plain-http LAN deployments.

export function newId(prefix = "") {
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
