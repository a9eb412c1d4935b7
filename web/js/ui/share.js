// "Copy share link…": the dialog that makes a link of the conversation on screen, and the
// read-only view a link opens (with "Save a copy"). The packing is in ../share.js.

import { copyText } from "../render/code.js";
import { MAX_SHARE_URL_CHARS, ShareError, decodeShare, encodeShare, needsPassphrase, sharedPayload } from "../share.js";
import { promptDialog } from "./dialogs.js";
import { byId } from "./dom.js";

export class ShareDialog {
  // current(): the conversation on screen (or null); modelFor(c): the model it uses.
  constructor({ current, vault, modelFor }) {
    this.current = current;
    this.vault = vault;
    this.modelFor = modelFor;
    this.dialog = byId("share-dialog");
    this.link = byId("share-link");
    this.error = byId("share-error");
    this.status = byId("share-status");
    byId("share-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    byId("share-close").addEventListener("click", () => this.dialog.close());
    for (const id of ["share-pictures", "share-passphrase"]) byId(id).addEventListener("input", () => this.clear());
  }

  clear() {
    this.link.value = "";
    this.error.textContent = "";
    this.status.textContent = "";
  }

  open() {
    this.clear();
    byId("share-passphrase").value = "";
    this.dialog.showModal();
    byId("share-create").focus();
  }

  async create() {
    this.clear();
    const conversation = this.current();
    if (!conversation?.messages.length) {
      this.error.textContent = "There is nothing to share yet: send a message first.";
      return;
    }
    const payload = await sharedPayload(conversation, {
      pictures: byId("share-pictures").checked,
      loadPicture: (id) => this.vault.get(id),
      model: this.modelFor(conversation),
    });
    const fragment = await encodeShare(payload, byId("share-passphrase").value);
    const url = `${location.origin}/${fragment}`;
    if (url.length > MAX_SHARE_URL_CHARS) {
      const pictures = byId("share-pictures").checked ? "without pictures, or " : "";
      this.error.textContent = `This conversation makes a link of ${url.length.toLocaleString("en")} characters; browsers reliably open links of up to ${MAX_SHARE_URL_CHARS.toLocaleString("en")}. Share it ${pictures}export it as a file instead.`;
      return;
    }
    this.link.value = url;
    try {
      await copyText(url);
      this.status.textContent = `Link copied (${url.length.toLocaleString("en")} characters).`;
    } catch {
      this.status.textContent = "Copy the link above (the browser refused the clipboard).";
    }
    this.link.select();
  }
}

// The conversation a share link holds, asking for the passphrase when it is encrypted.
// Resolves to the payload, or null when the reader gave up.
export async function readSharedLink(hash) {
  if (!needsPassphrase(hash)) return decodeShare(hash);
  let payload = null;
  const answer = await promptDialog("This shared conversation is locked", {
    label: "Passphrase",
    type: "password",
    okLabel: "Open",
    text: "Whoever shared it chose a passphrase; it never left their browser, nor yours.",
    validate: async (value) => {
      try {
        payload = await decodeShare(hash, value);
        return null;
      } catch (error) {
        return error instanceof ShareError ? error.message : String(error);
      }
    },
  });
  return answer === null ? null : payload;
}
