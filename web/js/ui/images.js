// Pictures in messages: generated ones at a quarter of the column's width, uploaded ones as
// thumbnails; a click opens the full picture in an overlay (Esc closes) with a download button.

import { byId, el, icon } from "./dom.js";

const PERCENT = /(\d{1,3}(?:\.\d+)?)\s*%/;

export function progressFrom(status) {
  const match = PERCENT.exec(status || "");
  if (!match) return null;
  return Math.max(0, Math.min(100, Number(match[1])));
}

function extensionFor(dataUri) {
  const type = /^data:image\/([\w+.-]+)/.exec(dataUri || "")?.[1] || "jpeg";
  return { jpeg: "jpg", "svg+xml": "svg" }[type] || type;
}

export function fileNameFor(prompt, dataUri) {
  const stem = String(prompt || "image")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 48);
  return `${stem || "image"}.${extensionFor(dataUri)}`;
}

export function downloadDataUri(dataUri, name) {
  const link = el("a", { href: dataUri, download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

export class ImageViewer {
  constructor() {
    this.dialog = byId("image-overlay");
    this.image = byId("overlay-image");
    this.current = null;
    byId("overlay-close").addEventListener("click", () => this.close());
    byId("overlay-download").addEventListener("click", () => {
      if (this.current) downloadDataUri(this.current.src, this.current.name);
    });
    // A click on the backdrop (the dialog itself, not the picture) closes it too.
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.close();
    });
    this.dialog.addEventListener("close", () => this.opener?.focus({ preventScroll: true }));
  }

  open(src, alt, name, opener) {
    this.current = { src, name };
    this.opener = opener;
    this.image.src = src;
    this.image.alt = alt || "Image";
    this.dialog.showModal();
    byId("overlay-close").focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }
}

// `load` resolves the data URI (from the image vault); the element shows a placeholder until then.
export function imageFigure({ kind, imageId, alt, name, load, viewer }) {
  const picture = el("img", { alt: alt || "Image", className: "message-image-img", decoding: "async" });
  const open = el("button", { type: "button", className: "image-open", "aria-label": `Open ${alt || "image"} full size` }, [picture]);
  const figure = el("figure", { className: `message-image ${kind} loading` }, [open]);
  figure.dataset.imageId = imageId;
  let source = null;
  open.addEventListener("click", () => source && viewer.open(source, alt, name, open));
  if (kind === "generated") {
    const download = el("button", { type: "button", className: "image-download", "aria-label": "Download image", title: "Download" }, [
      icon("download"),
      el("span", { text: "Download" }),
    ]);
    download.addEventListener("click", () => source && downloadDataUri(source, name));
    figure.append(el("figcaption", {}, [el("span", { className: "image-prompt", text: alt }), download]));
  }
  load(imageId).then((dataUri) => {
    figure.classList.remove("loading");
    if (!dataUri) {
      figure.classList.add("missing");
      picture.alt = "This image is no longer stored in this browser.";
      return;
    }
    source = dataUri;
    picture.src = dataUri;
  });
  return figure;
}
