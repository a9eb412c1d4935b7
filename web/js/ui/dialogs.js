// One <dialog> for confirm and prompt questions, so no window.confirm/prompt blocks the page
// (and tests can tell an app question from a script's alert).

import { byId } from "./dom.js";

function ask({ title, text = "", input = null, okLabel = "OK", danger = false, validate = null }) {
  const dialog = byId("dialog");
  const field = byId("dialog-input");
  const error = byId("dialog-error");
  const ok = byId("dialog-ok");
  byId("dialog-title").textContent = title;
  byId("dialog-text").textContent = text;
  byId("dialog-text").hidden = !text;
  error.textContent = "";
  ok.textContent = okLabel;
  ok.classList.toggle("danger", danger);
  field.hidden = input === null;
  byId("dialog-input-label").textContent = input?.label || "Value";
  field.type = input?.type || "text";
  field.value = input?.value || "";
  dialog.showModal();
  (input === null ? ok : field).focus();
  if (input !== null) field.select();

  return new Promise((resolve) => {
    const finish = (value) => {
      cleanup();
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onSubmit = async (event) => {
      event.preventDefault();
      const value = input === null ? true : field.value;
      if (validate) {
        ok.disabled = true;
        const problem = await validate(value).finally(() => {
          ok.disabled = false;
        });
        if (problem) {
          error.textContent = problem;
          field.focus();
          return;
        }
      }
      finish(value);
    };
    const onCancel = () => finish(input === null ? false : null);
    const onCancelEvent = (event) => {
      event.preventDefault();
      onCancel();
    };
    const form = byId("dialog-form");
    const cancel = byId("dialog-cancel");
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancelEvent);
    function cleanup() {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancelEvent);
    }
  });
}

export function confirmDialog(title, text, okLabel = "Delete") {
  return ask({ title, text, okLabel, danger: true });
}

export function promptDialog(title, { label, value = "", type = "text", okLabel = "Save", text = "", validate } = {}) {
  return ask({ title, text, input: { label, value, type }, okLabel, validate });
}
