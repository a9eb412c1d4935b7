// Attached documents: reading a file's text (PDF text extracted here, in the browser, with
// the pinned pdf.js), and keeping that text in IndexedDB with the conversation. A message
// holds only {id, name, size, type, chars} per document, like pictures hold an image id.
//
// The text is stored already encoded as a JSON string, in a Blob: a request with tens of MB
// of documents is then a Blob made of Blobs, which fetch uploads from the browser's blob
// store without another copy of the text in JavaScript memory.

import { IndexedVault } from "./vault.js";

const PDFJS = "/vendor/pdfjs-dist/build/pdf.min.mjs";
const PDFJS_WORKER = "/vendor/pdfjs-dist/build/pdf.worker.min.mjs";

const TEXT_EXTENSIONS = new Set(
  (
    "txt text md markdown rst csv tsv json jsonl ndjson html htm xml log ini toml yaml yml cfg conf env " +
    "py js mjs cjs ts tsx jsx java kt c h cc cpp hpp cs go rs rb php pl swift scala sh bash zsh sql css scss " +
    "tex bib r m lua dart vue svelte ipynb srt vtt diff patch"
  ).split(" "),
);

export const DOCUMENT_ACCEPT = [
  ".pdf",
  ...[...TEXT_EXTENSIONS].map((ext) => `.${ext}`),
  "text/*",
  "application/json",
  "application/pdf",
].join(",");

function extensionOf(name) {
  const match = /\.([A-Za-z0-9]+)$/.exec(name || "");
  return match ? match[1].toLowerCase() : "";
}

export function isPdf(file) {
  return file.type === "application/pdf" || extensionOf(file.name) === "pdf";
}

export function isImage(file) {
  return file.type.startsWith("image/") && extensionOf(file.name) !== "svg";
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

let pdfjsLoading = null;

async function loadPdfjs() {
  // Loaded on the first PDF only: most pages never need it.
  pdfjsLoading ||= import(PDFJS).then((pdfjs) => {
    pdfjs.GlobalWorkerOptions.workerSrc = PDFJS_WORKER;
    return pdfjs;
  });
  return pdfjsLoading;
}

async function pdfText(file) {
  const pdfjs = await loadPdfjs();
  const task = pdfjs.getDocument({
    data: new Uint8Array(await file.arrayBuffer()),
    isEvalSupported: false,
    cMapUrl: "/vendor/pdfjs-dist/cmaps/",
    cMapPacked: true,
    standardFontDataUrl: "/vendor/pdfjs-dist/standard_fonts/",
  });
  const pdf = await task.promise;
  try {
    const pages = [];
    for (let number = 1; number <= pdf.numPages; number++) {
      const page = await pdf.getPage(number);
      const content = await page.getTextContent();
      pages.push(content.items.map((item) => (item.str ?? "") + (item.hasEOL ? "\n" : "")).join(""));
      page.cleanup();
    }
    const text = pages.join("\n\n").trim();
    if (!text) throw new Error(`“${file.name}” has no text layer (a scanned PDF?); nothing to read.`);
    return text;
  } finally {
    await pdf.destroy();
  }
}

async function plainText(file) {
  const known = file.type.startsWith("text/") || file.type === "application/json" || TEXT_EXTENSIONS.has(extensionOf(file.name));
  // A quick look at the start tells text from a binary file with a misleading name.
  const head = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
  if (head.includes(0)) throw new Error(`“${file.name}” is not a text document or a PDF.`);
  if (!known && file.type && !/xml|json|javascript|text/.test(file.type)) {
    throw new Error(`“${file.name}” is not a text document or a PDF.`);
  }
  return file.text();
}

// {name, type, size, text}: the document's text as the model will read it.
export async function readDocument(file) {
  const name = (file.name || "pasted.txt").slice(0, 255);
  const text = isPdf(file) ? await pdfText(file) : await plainText(file);
  return { name, type: isPdf(file) ? "application/pdf" : file.type || "text/plain", size: file.size, text };
}

export function encodedTextBlob(text) {
  return new Blob([JSON.stringify(text)], { type: "application/json" });
}

// The documents' texts, by id, as JSON-string Blobs. A memory cache keeps what this page
// stored, so a document is not lost when the database refuses it.
export class DocumentVault extends IndexedVault {
  constructor() {
    super("tinychat-documents", "documents", "documents");
  }

  async put(id, text) {
    await super.put(id, encodedTextBlob(text));
  }

  // The JSON-encoded text as a Blob, or null.
  async getBlob(id) {
    return this.get(id);
  }

  async getText(id) {
    const blob = await this.getBlob(id);
    return blob ? JSON.parse(await blob.text()) : null;
  }
}

export function documentIdsOf(conversation) {
  return conversation.messages.flatMap((m) => (m.attachments || []).map((a) => a.id));
}

// The request body as a Blob: `body` (without documents) plus the documents, each text
// taken as stored. Nothing is parsed or copied in JavaScript.
export async function bodyWithDocuments(body, attachments, vault) {
  const head = JSON.stringify(body);
  const parts = [head.slice(0, -1), head.length > 2 ? ',"documents":[' : '"documents":['];
  let first = true;
  for (const attachment of attachments) {
    const blob = await vault.getBlob(attachment.id);
    if (!blob) throw new Error(`The text of “${attachment.name}” is no longer stored in this browser.`);
    parts.push(`${first ? "" : ","}{"name":${JSON.stringify(attachment.name)},"text":`, blob, "}");
    first = false;
  }
  parts.push("]}");
  return new Blob(parts, { type: "application/json" });
}

// Normal chat: the documents become text parts of the message, each marked with its name.
export function inlineDocuments(text, documents) {
  const parts = documents.map((d) => `<document name=${JSON.stringify(d.name)}>\n${d.text}\n</document>`);
  return [...parts, text].filter(Boolean).join("\n\n");
}
