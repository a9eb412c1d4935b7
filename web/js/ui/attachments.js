// Document attachments on screen: the tray of chips above the message box (documents
// waiting to be sent, read as they are added) and the chips under a sent message.

import { DOCUMENT_ACCEPT, formatSize, readDocument } from "../documents.js";
import { el, reconcile } from "./dom.js";

function chip(document, onRemove) {
  const label = `${document.name} · ${formatSize(document.size)}`;
  const item = el("span", { className: "document-chip", title: label, dataset: { name: document.name } }, [
    el("span", { className: "document-chip-icon", "aria-hidden": "true", text: document.type === "application/pdf" ? "PDF" : "TXT" }),
    el("span", { className: "document-chip-name", text: document.name }),
    el("span", { className: "document-chip-size", text: formatSize(document.size) }),
  ]);
  if (onRemove) {
    const remove = el("button", { type: "button", className: "document-chip-remove", "aria-label": `Remove ${document.name}`, text: "×" });
    remove.addEventListener("click", onRemove);
    item.append(remove);
  }
  return item;
}

const READING = { reading: true }; // the placeholder chip while a file is being read

// The composer's documents: read when added (a PDF's text is extracted then), shown as
// chips, handed over on send.
export class DocumentTray {
  constructor(form, fileInput, onError) {
    this.onError = onError;
    this.documents = [];
    this.keys = new WeakMap(); // document → its chip's key (documents carry no id until sent)
    this.lastKey = 0;
    this.reading = 0;
    this.element = el("div", { className: "document-tray", id: "document-tray", "aria-label": "Attached documents" });
    this.element.hidden = true;
    form.prepend(this.element);
    fileInput.accept = `image/*,${DOCUMENT_ACCEPT}`;
    fileInput.multiple = true;
  }

  get count() {
    return this.documents.length;
  }

  get busy() {
    return this.reading > 0;
  }

  async add(files) {
    for (const file of files) {
      this.reading++;
      this.render();
      try {
        this.documents.push(await readDocument(file));
      } catch (error) {
        this.onError(error.message || `Could not read “${file.name}”.`);
      } finally {
        this.reading--;
        this.render();
      }
    }
  }

  take() {
    const taken = this.documents;
    this.documents = [];
    this.render();
    return taken;
  }

  keyOf(document) {
    if (!this.keys.has(document)) this.keys.set(document, `document-${++this.lastKey}`);
    return this.keys.get(document);
  }

  remove(document) {
    const index = this.documents.indexOf(document);
    if (index >= 0) this.documents.splice(index, 1);
    this.render();
  }

  render() {
    const items = this.reading ? [...this.documents, READING] : this.documents;
    reconcile(this.element, items, {
      key: (item) => (item === READING ? "reading" : this.keyOf(item)),
      create: (item) => (item === READING ? el("span", { className: "document-chip reading", text: "Reading…" }) : chip(item, () => this.remove(item))),
    });
    this.element.hidden = items.length === 0;
  }
}

// Chips under a sent message: name and size of each document it carried.
export function renderAttachmentChips(extras, message) {
  const attachments = message.attachments || [];
  let box = null;
  for (const child of extras.children) if (child.classList.contains("message-documents")) box = child;
  const signature = attachments.map((a) => a.id).join(",");
  if (box && box.dataset.signature === signature) return;
  if (!attachments.length) {
    box?.remove();
    return;
  }
  if (!box) {
    box = el("div", { className: "message-documents" });
    extras.prepend(box);
  }
  box.dataset.signature = signature;
  reconcile(box, attachments, { key: (a) => a.id, create: (a) => chip(a, null) });
}
