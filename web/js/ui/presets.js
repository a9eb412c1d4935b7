// Prompt presets: a system prompt saved under a name. The settings panel saves, applies and
// deletes them; the empty state of a new chat offers each one as "start a chat from it".
// They live in the user's settings (store.settings.presets: [{id, name, systemPrompt}]).

import { newId } from "../ids.js";
import { confirmDialog, promptDialog } from "./dialogs.js";
import { byId, el, reconcile } from "./dom.js";

export function presetsOf(store) {
  return Array.isArray(store.settings.presets) ? store.settings.presets : [];
}

export class PresetsPanel {
  // onApply(systemPrompt): use it in the chat on screen; onStart(systemPrompt): a new chat.
  constructor(store, { currentPrompt, onApply, onStart }) {
    this.store = store;
    this.currentPrompt = currentPrompt;
    this.onApply = onApply;
    this.onStart = onStart;
    this.select = byId("preset-select");
    this.chips = byId("preset-chips");
    this.deleteButton = byId("preset-delete");

    byId("preset-save").addEventListener("click", () => this.saveCurrent());
    this.select.addEventListener("change", () => {
      const preset = this.find(this.select.value);
      this.deleteButton.disabled = !preset;
      if (preset) this.onApply(preset.systemPrompt);
    });
    this.deleteButton.addEventListener("click", () => this.deleteSelected());
    this.chips.addEventListener("click", (event) => {
      const chip = event.target.closest("button[data-preset]");
      const preset = chip && this.find(chip.dataset.preset);
      if (preset) this.onStart(preset.systemPrompt);
    });
    store.addEventListener("settings", () => this.render());
    this.render();
  }

  find(id) {
    return presetsOf(this.store).find((p) => p.id === id) || null;
  }

  async saveCurrent() {
    const systemPrompt = this.currentPrompt().trim();
    if (!systemPrompt) {
      byId("system-prompt").focus();
      return;
    }
    const name = await promptDialog("Save as preset", {
      label: "Name",
      text: "The system prompt is saved under this name; a new chat can start from it.",
      validate: async (value) => (value.trim() ? null : "Give the preset a name."),
    });
    if (!name?.trim()) return;
    const clean = name.replace(/\s+/g, " ").trim().slice(0, 80);
    const others = presetsOf(this.store).filter((p) => p.name !== clean);
    this.store.saveSettings({ presets: [...others, { id: newId("p"), name: clean, systemPrompt }] });
  }

  async deleteSelected() {
    const preset = this.find(this.select.value);
    if (!preset) return;
    const ok = await confirmDialog("Delete this preset?", `“${preset.name}” will be removed. Chats that used it keep their prompt.`, "Delete");
    if (ok) this.store.saveSettings({ presets: presetsOf(this.store).filter((p) => p.id !== preset.id) });
  }

  render() {
    const presets = [...presetsOf(this.store)].sort((a, b) => a.name.localeCompare(b.name));
    const chosen = this.select.value;
    const placeholder = { id: "", name: presets.length ? "Use a preset…" : "No presets yet" };
    reconcile(this.select, [placeholder, ...presets], {
      key: (p) => p.id || "none",
      create: (p) => el("option", { value: p.id }),
      update: (option, p) => {
        option.textContent = p.name;
      },
    });
    this.select.value = presets.some((p) => p.id === chosen) ? chosen : "";
    this.select.disabled = presets.length === 0;
    this.deleteButton.disabled = !this.find(this.select.value);
    reconcile(this.chips, presets, {
      key: (p) => p.id,
      create: (p) => {
        const chip = el("button", { type: "button", className: "chip preset-chip" }, [
          el("span", { className: "preset-label", text: "Start with " }),
          el("strong"),
        ]);
        chip.dataset.preset = p.id;
        return chip;
      },
      update: (chip, p) => {
        chip.title = p.systemPrompt.slice(0, 300);
        chip.querySelector("strong").textContent = p.name;
      },
    });
    this.chips.hidden = presets.length === 0;
  }

  // The chat on screen changed: the picker shows no stale choice.
  reset() {
    this.select.value = "";
    this.deleteButton.disabled = true;
  }
}
