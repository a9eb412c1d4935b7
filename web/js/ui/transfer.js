// The export, import and clear-all controls: the conversation's export menu (JSON, Markdown,
// share link) and the sidebar's buttons for every conversation. The files themselves are
// written and read by ../transfer.js; this module only wires the buttons to it.

import { documentIdsOf } from "../documents.js";
import { ImportError, exportFileName, exportJson, exportMarkdown, parseImport } from "../transfer.js";
import { confirmDialog } from "./dialogs.js";
import { byId, downloadFile } from "./dom.js";

export class TransferControls {
  // current(): the conversation on screen (or null); modelFor(c): the model it uses;
  // onShare(): open the share dialog; stopAll(): end every answer before a clear-all;
  // onCleared(): everything was deleted.
  constructor({ store, vault, documents, current, modelFor, onShare, stopAll, onCleared }) {
    this.store = store;
    this.vault = vault;
    this.documents = documents;
    this.current = current;
    this.modelFor = modelFor;
    this.stopAll = stopAll;
    this.onCleared = onCleared;
    this.menu = byId("export-menu");
    this.opener = byId("export-one");
    this.wireMenu();

    const one = () => [this.current()].filter(Boolean);
    const all = () => this.store.list();
    byId("export-one-json").addEventListener("click", () => this.exportAs(one(), "json"));
    byId("export-one-md").addEventListener("click", () => this.exportAs(one(), "md"));
    byId("share-open").addEventListener("click", () => {
      this.closeMenu();
      onShare();
    });
    byId("export-all-json").addEventListener("click", () => this.exportAs(all(), "json"));
    byId("export-all-md").addEventListener("click", () => this.exportAs(all(), "md"));

    const file = byId("import-file");
    byId("import").addEventListener("click", () => file.click());
    file.addEventListener("change", async () => {
      const [chosen] = file.files;
      file.value = "";
      if (chosen) await this.importFile(chosen);
    });
    byId("clear-all").addEventListener("click", () => this.clearAll());
  }

  wireMenu() {
    const { menu, opener } = this;
    opener.addEventListener("click", () => {
      menu.hidden = !menu.hidden;
      opener.setAttribute("aria-expanded", String(!menu.hidden));
      if (!menu.hidden) menu.querySelector("button").focus();
    });
    document.addEventListener("click", (event) => {
      if (!menu.hidden && !menu.contains(event.target) && !opener.contains(event.target)) this.closeMenu();
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.closeMenu();
        opener.focus();
      }
    });
  }

  closeMenu() {
    this.menu.hidden = true;
    this.opener.setAttribute("aria-expanded", "false");
  }

  async exportAs(conversations, format) {
    this.closeMenu();
    if (!conversations.length) {
      this.store.notify("There is nothing to export yet.");
      return;
    }
    if (format === "json") {
      const json = await exportJson(conversations, this.vault, this.documents);
      downloadFile(exportFileName(conversations, "json"), json, "application/json");
    } else {
      downloadFile(exportFileName(conversations, "md"), exportMarkdown(conversations, this.modelFor), "text/markdown");
    }
  }

  async importFile(file) {
    const notify = (message, kind) => this.store.notify(message, kind);
    let parsed;
    try {
      parsed = parseImport(await file.text());
    } catch (error) {
      notify(error instanceof ImportError ? error.message : `Could not read the file: ${error.message}`, "error");
      return;
    }
    for (const { pictures, documents = [] } of parsed) {
      for (const picture of pictures) await this.vault.put(picture.id, picture.data).catch((e) => notify(e.message, "error"));
      for (const document of documents) await this.documents.put(document.id, document.text).catch((e) => notify(e.message, "error"));
    }
    const report = this.store.merge(parsed.map((p) => p.conversation));
    const parts = [`${report.added} added`];
    if (report.copies) parts.push(`${report.copies} kept as copies (an older version was already here)`);
    if (report.duplicates) parts.push(`${report.duplicates} already present`);
    notify(`Import: ${parts.join(", ")}.`);
  }

  async clearAll() {
    const count = this.store.conversations.size;
    if (!count) return;
    const ok = await confirmDialog(
      "Delete all conversations?",
      `All ${count} conversation${count === 1 ? "" : "s"} and their images will be removed from this browser. Export them first if you want to keep them.`,
      "Delete all",
    );
    if (!ok) return;
    this.stopAll();
    this.documents.remove(this.store.list().flatMap(documentIdsOf)).catch(() => {});
    this.vault.remove(this.store.clearAll()).catch(() => {});
    this.onCleared();
  }
}
