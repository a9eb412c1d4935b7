// Generated and uploaded pictures live in IndexedDB (localStorage is far too small for them);
// messages only hold an image id. A memory cache keeps what this page has seen, so a picture
// is never lost when the database refuses to store it.

import { IndexedVault } from "./vault.js";

export class ImageVault extends IndexedVault {
  constructor() {
    super("tinychat", "images", "images");
  }
}

// getRandomValues, unlike randomUUID, also works on plain-http LAN deployments.
export function newId(prefix = "") {
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Pictures kept for this page only (a shared link's read-only view writes no storage).
export class MemoryVault {
  constructor() {
    this.cache = new Map();
  }

  async put(id, dataUri) {
    this.cache.set(id, dataUri);
  }

  async get(id) {
    return this.cache.get(id) ?? null;
  }

  async remove(ids) {
    for (const id of ids) this.cache.delete(id);
  }
}
