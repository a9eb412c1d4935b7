// A keyed store in IndexedDB (localStorage is far too small for pictures and documents), with
// a memory cache of what this page has seen, so a value is never lost when the database
// refuses to store it. PictureVault (picture-vault.js) and DocumentVault are two of these,
// one database each.

function openDatabase(name, store) {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(store);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function inTransaction(db, store, mode, work) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const result = work(tx.objectStore(store));
    tx.oncomplete = () => resolve(result?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export class IndexedVault {
  // `what` names the values for a person ("images"), in the error when nothing can be stored.
  constructor(database, store, what) {
    this.store = store;
    this.what = what;
    this.cache = new Map();
    this.db = openDatabase(database, store).catch(() => null);
  }

  async put(id, value) {
    this.cache.set(id, value);
    const db = await this.db;
    if (!db) throw new Error(`This browser does not allow storing ${this.what}; they last until the page closes.`);
    await inTransaction(db, this.store, "readwrite", (store) => store.put(value, id));
  }

  async get(id) {
    if (this.cache.has(id)) return this.cache.get(id);
    const db = await this.db;
    if (!db) return null;
    const value = await inTransaction(db, this.store, "readonly", (store) => store.get(id));
    if (value) this.cache.set(id, value);
    return value ?? null;
  }

  async remove(ids) {
    for (const id of ids) this.cache.delete(id);
    const db = await this.db;
    if (!db || !ids.length) return;
    await inTransaction(db, this.store, "readwrite", (store) => {
      let last;
      for (const id of ids) last = store.delete(id);
      return last;
    });
  }
}
