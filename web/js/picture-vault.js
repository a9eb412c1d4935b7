// The picture vault: generated and uploaded pictures live in IndexedDB (localStorage is far
// too small for them); messages only hold a picture's id. A memory cache keeps what this page
// has seen, so a picture is never lost when the database refuses to store it.

import { IndexedVault } from "./vault.js";

export class PictureVault extends IndexedVault {
  constructor() {
    super("tinychat", "images", "images");
  }
}

// Pictures kept for this page only (a shared link's read-only view writes no storage).
export class MemoryPictureVault {
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
