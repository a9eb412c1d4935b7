// Entry point: loads the server's config and the stored conversations, then wires the parts
// of the screen together. Keyboard: Ctrl/Cmd+K new chat, Esc stops an answer.

import { fetchConfig } from "./api.js";
import { DocumentVault, documentIdsOf } from "./documents.js";
import { newId } from "./ids.js";
import { MemoryPictureVault, PictureVault } from "./picture-vault.js";
import { ChatSession } from "./session.js";
import { ShareError, asImportable, isShareFragment } from "./share.js";
import { Store, blankConversation } from "./store.js";
import { ImportError, parseImport } from "./transfer.js";
import { ChatView } from "./ui/chat.js";
import { Composer } from "./ui/composer.js";
import { byId, el, toast } from "./ui/dom.js";
import { ImageViewer } from "./ui/images.js";
import { PresetsPanel } from "./ui/presets.js";
import { SettingsPanel, applyTheme } from "./ui/settings.js";
import { ShareDialog, readSharedLink } from "./ui/share.js";
import { Sidebar } from "./ui/sidebar.js";
import { TransferControls } from "./ui/transfer.js";

const LAST_OPEN_KEY = "tinychat.lastConversation";
const SUGGESTIONS = [
  "Explain the Fourier transform with one formula",
  "Write a Python function that merges sorted lists",
  "Compare TCP and UDP in a table",
  "/image a lighthouse at dusk, watercolor",
];

function notify(message, kind = "info") {
  toast(message, { kind, timeout: kind === "error" ? 8000 : 4000 });
}

async function loadConfig() {
  try {
    return await fetchConfig();
  } catch (error) {
    notify(`Could not load the server's configuration: ${error.message}`, "error");
    return { models: [], rlm: { enabled: false }, image: { enabled: false } };
  }
}

// A Storage that keeps everything in memory: the read-only view of a share link.
class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  get length() {
    return this.items.size;
  }
  key(i) {
    return [...this.items.keys()][i] ?? null;
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

class App {
  // `shared`: {conversation, pictures} from a share link, shown read-only; nothing is stored.
  constructor(config, shared = null) {
    this.config = config;
    this.shared = shared;
    this.store = shared ? new Store(new MemoryStorage()) : new Store();
    if (shared) {
      // The reader's own settings (theme) apply to what they read.
      try {
        this.store.settings = { ...this.store.settings, ...JSON.parse(localStorage.getItem("tinychat.settings") || "{}") };
      } catch {
        // defaults
      }
    } else {
      this.store.load();
      this.store.watch();
    }
    applyTheme(this.store.settings.theme);
    this.vault = shared ? new MemoryPictureVault() : new PictureVault();
    this.documents = new DocumentVault();
    this.draft = null; // a new chat that becomes a stored conversation on its first message
    this.currentId = null;

    this.viewer = new ImageViewer();
    this.settings = new SettingsPanel(this.store, config, (patch) => this.changeCurrent(patch));
    this.presets = new PresetsPanel(this.store, {
      currentPrompt: () => byId("system-prompt").value,
      onApply: (systemPrompt) => {
        byId("system-prompt").value = systemPrompt;
        this.changeCurrent({ systemPrompt });
      },
      onStart: (systemPrompt) => {
        this.newChat();
        this.changeCurrent({ systemPrompt });
        this.settings.show(this.current);
      },
    });
    this.view = new ChatView(this.store, this.vault, this.viewer, {
      regenerate: (id) => this.session.regenerate(this.currentId, id),
      retry: (id) => this.session.regenerate(this.currentId, id),
      editAndResend: (id, text) => this.session.editAndResend(this.currentId, id, text),
      switchBranch: (id) => this.store.switchBranch(this.currentId, id),
    });
    this.composer = new Composer(this.store, {
      onSend: (text, attachment, documents) => this.send(text, attachment, documents),
      onStop: () => this.session.stop(this.currentId),
      onError: (message) => notify(message, "error"),
    });
    this.session = new ChatSession({ store: this.store, vault: this.vault, documents: this.documents, config });
    this.sidebar = new Sidebar(this.store, {
      onSelect: (id) => this.open(id),
      onNew: () => this.newChat(),
      onDelete: (id) => this.remove(id),
    });
    this.store.addEventListener("notice", (e) => notify(e.detail.message, e.detail.kind));
    this.store.addEventListener("storage-error", (e) => notify(e.detail.message, "error"));
    this.store.addEventListener("conversation", (e) => {
      if (e.detail.id !== this.currentId) return;
      // Deleted in another tab: nothing left to show here.
      if (e.detail.removed) this.newChat();
      else this.showTitle();
    });
    this.wireKeys();
    this.wireSuggestions();
    // A pending (deferred) save must not be lost when the tab closes.
    window.addEventListener("pagehide", () => {
      for (const id of [...this.store.saveTimers.keys()]) this.store.flush(id);
    });

    const onScreen = () => (this.currentId ? this.store.get(this.currentId) : null);
    const modelFor = (c) => this.settings.modelFor(c);
    this.shareDialog = new ShareDialog({ current: onScreen, vault: this.vault, modelFor });
    this.transfer = new TransferControls({
      store: this.store,
      vault: this.vault,
      documents: this.documents,
      current: onScreen,
      modelFor,
      onShare: () => this.shareDialog.open(),
      stopAll: () => this.session.stopAll(),
      onCleared: () => this.newChat(),
    });
    // A share link pasted into this tab opens it.
    window.addEventListener("hashchange", () => isShareFragment(location.hash) && location.reload());

    this.sidebar.render();
    if (shared) {
      this.showShared(shared);
      return;
    }
    const last = localStorage.getItem(LAST_OPEN_KEY);
    if (last && this.store.get(last)) this.open(last);
    else this.newChat();
  }

  showShared({ conversation, pictures }) {
    for (const picture of pictures) this.vault.put(picture.id, picture.data);
    this.store.merge([conversation]);
    document.documentElement.classList.add("read-only");
    byId("shared-banner").hidden = false;
    this.currentId = conversation.id;
    this.settings.show(conversation);
    this.view.show(conversation.id);
    this.showTitle();
    document.title = `${conversation.title} · shared · TinyChat`;
    byId("save-copy").addEventListener("click", () => this.saveSharedCopy(conversation, pictures));
    byId("save-copy").focus();
  }

  // Into this browser's own storage, as a new conversation; then the normal app opens it.
  async saveSharedCopy(conversation, pictures) {
    const own = new Store();
    own.load();
    const vault = new PictureVault();
    for (const picture of pictures) await vault.put(picture.id, picture.data).catch((e) => notify(e.message, "error"));
    const copy = { ...conversation, id: newId("c"), updatedAt: Date.now() };
    own.merge([copy]);
    if (own.unsaved.size) return; // storage-error already told the reader why
    localStorage.setItem(LAST_OPEN_KEY, copy.id);
    location.replace("/");
  }

  get current() {
    return this.currentId ? this.store.get(this.currentId) : this.draft;
  }

  changeCurrent(patch) {
    if (this.currentId) this.store.update(this.currentId, patch);
    else Object.assign(this.draft, patch);
  }

  showTitle() {
    const title = this.current?.title || "New chat";
    byId("chat-title").textContent = title;
    document.title = this.currentId ? `${title} · TinyChat` : "TinyChat";
  }

  open(id) {
    this.currentId = id;
    this.draft = null;
    try {
      localStorage.setItem(LAST_OPEN_KEY, id);
    } catch {
      // Remembering the open chat is a comfort; a full storage is reported elsewhere.
    }
    this.sidebar.setActive(id);
    this.settings.show(this.current);
    this.presets.reset();
    this.view.show(id);
    this.composer.show(id);
    this.showTitle();
    this.composer.focus();
  }

  newChat() {
    this.currentId = null;
    this.draft = blankConversation(this.store.settings);
    this.sidebar.setActive(null);
    this.settings.show(this.draft);
    this.presets.reset();
    this.view.show(null);
    this.composer.show(null);
    this.showTitle();
    this.composer.focus();
  }

  async send(text, attachment, documents = []) {
    if (this.store.isAnswering(this.currentId)) return false;
    if (!this.currentId) {
      const { id, ...rest } = this.draft;
      this.open(this.store.create(rest).id);
    }
    return this.session.send(this.currentId, text, attachment, documents);
  }

  remove(id) {
    this.session.stop(id);
    const conversation = this.store.get(id);
    if (conversation) this.documents.remove(documentIdsOf(conversation)).catch(() => {});
    const images = this.store.remove(id);
    this.vault.remove(images).catch(() => {});
    if (id === this.currentId) this.newChat();
  }

  wireKeys() {
    const isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
    byId("new-chat-shortcut").textContent = isMac ? "⌘K" : "Ctrl K";
    document.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
        event.preventDefault();
        this.newChat();
      } else if (event.key === "Escape" && this.store.isAnswering(this.currentId) && !document.querySelector("dialog[open]")) {
        event.preventDefault();
        this.session.stop(this.currentId);
      }
    });
  }

  wireSuggestions() {
    const box = byId("suggestions");
    const list = this.config.image?.enabled ? SUGGESTIONS : SUGGESTIONS.filter((s) => !s.startsWith("/image"));
    for (const text of list) {
      const chip = el("button", { type: "button", className: "chip suggestion", text });
      chip.addEventListener("click", () => this.composer.setText(text));
      box.append(chip);
    }
  }
}

async function sharedConversation() {
  if (!isShareFragment(location.hash)) return null;
  try {
    const payload = await readSharedLink(location.hash);
    if (!payload) return null;
    const [parsed] = parseImport(JSON.stringify({ conversations: [asImportable(payload)] }));
    return parsed;
  } catch (error) {
    const reason = error instanceof ShareError || error instanceof ImportError ? error.message : `Could not open the link: ${error.message}`;
    notify(reason, "error");
    return null;
  }
}

// Installable, and the shell opens offline (web/sw.js). The worker is told what this page
// loaded, so every module is cached without a list kept by hand.
async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("/sw.js");
    const registration = await navigator.serviceWorker.ready;
    const loaded = performance.getEntriesByType("resource").map((entry) => entry.name);
    registration.active?.postMessage({ cache: [location.pathname, ...loaded] });
  } catch {
    // No worker (private mode, plain http on a LAN address): the app works online as before.
  }
}

const config = await loadConfig();
new App(config, await sharedConversation());
if (document.readyState === "complete") registerServiceWorker();
else window.addEventListener("load", registerServiceWorker, { once: true });
