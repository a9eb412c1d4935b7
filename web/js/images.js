// Generated and uploaded pictures live in IndexedDB (localStorage is far too small for them);
// messages only hold an image id. A memory cache keeps what this page has seen, so a picture
// is never lost when the database refuses to store it.

const DB_NAME = "tinychat";
const STORE = "images";

function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function inTransaction(db, mode, work) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const result = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(result.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export class ImageVault {
  constructor() {
    this.cache = new Map();
    this.db = openDatabase().catch(() => null);
  }

  async put(id, dataUri) {
    this.cache.set(id, dataUri);
    const db = await this.db;
    if (!db) throw new Error("This browser does not allow storing images; they last until the page closes.");
    await inTransaction(db, "readwrite", (store) => store.put(dataUri, id));
  }

  async get(id) {
    if (this.cache.has(id)) return this.cache.get(id);
    const db = await this.db;
    if (!db) return null;
    const value = await inTransaction(db, "readonly", (store) => store.get(id));
    if (value) this.cache.set(id, value);
    return value ?? null;
  }

  async remove(ids) {
    for (const id of ids) this.cache.delete(id);
    const db = await this.db;
    if (!db || !ids.length) return;
    await inTransaction(db, "readwrite", (store) => {
      let last;
      for (const id of ids) last = store.delete(id);
      return last;
    });
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
