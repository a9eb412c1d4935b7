// The message box: Enter sends, Shift+Enter adds a line, and a key pressed while an input
// method is composing (Japanese, Chinese, …) never sends. Images attach by button, paste or
// drag-and-drop; big ones are downscaled here, before they cost upload time and tokens.
// Other files (text, code, CSV, JSON, HTML, PDF; several at once) are documents: see
// ui/attachments.js.

import { isImage } from "../documents.js";
import { DocumentTray } from "./attachments.js";
import { byId } from "./dom.js";

export const MAX_IMAGE_SIDE = 1568;
const KEEP_AS_IS_BYTES = 1.5 * 1024 * 1024;
const KEEP_AS_IS_TYPES = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);
const JPEG_QUALITY = 0.88;

function readAsDataUri(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function loadImage(blob) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.onload = () => resolve({ image, url });
    image.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error("This file is not an image the browser can read."));
    };
    image.src = url;
  });
}

// Returns {dataUri, type, name, width, height}: the original when it is small enough,
// otherwise a JPEG whose long side is at most MAX_IMAGE_SIDE (transparency on white).
export async function prepareImage(file) {
  if (!file.type.startsWith("image/")) throw new Error(`“${file.name || "file"}” is not an image.`);
  const { image, url } = await loadImage(file);
  try {
    const { naturalWidth: width, naturalHeight: height } = image;
    const scale = Math.min(1, MAX_IMAGE_SIDE / Math.max(width, height));
    if (scale === 1 && file.size <= KEEP_AS_IS_BYTES && KEEP_AS_IS_TYPES.has(file.type)) {
      return { dataUri: await readAsDataUri(file), type: file.type, name: file.name || "pasted-image", width, height };
    }
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    const context = canvas.getContext("2d");
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.imageSmoothingQuality = "high";
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    const name = (file.name || "pasted-image").replace(/\.\w+$/, "") + ".jpg";
    return { dataUri: await readAsDataUri(blob), type: "image/jpeg", name, width: canvas.width, height: canvas.height };
  } finally {
    URL.revokeObjectURL(url);
  }
}

export class Composer {
  // Send turns into Stop while the conversation on screen (see show) answers.
  constructor(store, { onSend, onStop, onError }) {
    this.store = store;
    this.conversationId = null;
    this.onSend = onSend;
    this.onStop = onStop;
    this.onError = onError;
    this.form = byId("composer");
    this.input = byId("composer-input");
    this.sendButton = byId("send");
    this.stopButton = byId("stop");
    this.fileInput = byId("attach-file");
    this.attachment = null;
    this.documents = new DocumentTray(this.form, this.fileInput, onError);
    this.busy = false;

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => this.onKeyDown(event));
    this.input.addEventListener("input", () => this.autosize());
    this.input.addEventListener("paste", (event) => this.onPaste(event));
    this.stopButton.addEventListener("click", () => this.onStop());
    byId("attach").addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      this.takeFiles([...this.fileInput.files]);
      this.fileInput.value = "";
    });
    byId("attachment-remove").addEventListener("click", () => this.clearAttachment());
    this.installDropZone();
    store.addEventListener("activity", (e) => {
      if (e.detail.conversationId === this.conversationId) this.setBusy(e.detail.busy);
    });
  }

  // The conversation on screen (null: a new chat not yet sent).
  show(conversationId) {
    this.conversationId = conversationId;
    this.setBusy(this.store.isAnswering(conversationId));
  }

  onKeyDown(event) {
    // keyCode 229 is what some browsers report for keys that belong to an IME composition.
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === "Enter" && !event.shiftKey && !event.altKey) {
      event.preventDefault();
      this.submit();
    }
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, window.innerHeight * 0.4)}px`;
  }

  submit() {
    if (this.busy) return;
    const text = this.input.value.trim();
    if (!text && !this.attachment && !this.documents.count) return;
    if (this.documents.busy) {
      this.onError("The attached documents are still being read; send again in a moment.");
      return;
    }
    const documents = this.documents.take();
    Promise.resolve(this.onSend(text, this.attachment, documents)).then((accepted) => {
      if (accepted === false) {
        this.documents.documents.unshift(...documents);
        this.documents.render();
        return;
      }
      this.input.value = "";
      this.clearAttachment();
      this.autosize();
    });
  }

  // Images go to the picture slot (the first one); every other file is a document.
  takeFiles(files) {
    const image = files.find(isImage);
    if (image) this.attach(image);
    const documents = files.filter((f) => f !== image);
    if (documents.length) this.documents.add(documents);
  }

  setBusy(busy) {
    this.busy = busy;
    this.sendButton.hidden = busy;
    this.stopButton.hidden = !busy;
  }

  setText(text) {
    this.input.value = text;
    this.autosize();
    this.input.focus();
  }

  focus() {
    this.input.focus({ preventScroll: true });
  }

  onPaste(event) {
    const files = [...(event.clipboardData?.files || [])];
    if (!files.length) return;
    event.preventDefault();
    this.takeFiles(files);
  }

  installDropZone() {
    const zone = byId("main");
    const hint = byId("drop-hint");
    let depth = 0;
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      depth++;
      hint.hidden = false;
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) hint.hidden = true;
    });
    zone.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    zone.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      hint.hidden = true;
      this.takeFiles([...event.dataTransfer.files]);
    });
  }

  async attach(file) {
    try {
      this.attachment = await prepareImage(file);
    } catch (error) {
      this.onError(error.message);
      return;
    }
    byId("attachment-preview").src = this.attachment.dataUri;
    byId("attachment-name").textContent = `${this.attachment.name} · ${this.attachment.width}×${this.attachment.height}`;
    byId("attachment").hidden = false;
    this.focus();
  }

  clearAttachment() {
    this.attachment = null;
    byId("attachment").hidden = true;
    byId("attachment-preview").removeAttribute("src");
  }
}
