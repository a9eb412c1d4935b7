// Per-conversation settings (system prompt, model, temperature, markdown), the theme, and
// the RLM switch with its passcode. Model and temperature also become the defaults.

import { validateRlmPasscode } from "../api.js";
import { availableModels, modelFor, temperatureFor } from "../model-choice.js";
import { rememberPasscode, rlmPasscode } from "../passcode.js";
import { promptDialog } from "./dialogs.js";
import { byId } from "./dom.js";
import { fillModelSelect, parseMaxTokens } from "./models.js";

const THEMES = ["system", "light", "dark"];
const THEME_LABELS = { system: "Theme: follow system", light: "Theme: light", dark: "Theme: dark" };

export function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === "light" || theme === "dark") root.dataset.theme = theme;
  else delete root.dataset.theme;
}

export class SettingsPanel {
  // onChange(patch) applies a setting to the conversation on screen (or the unsaved draft).
  constructor(store, config, onChange) {
    this.store = store;
    this.config = config;
    this.onChange = onChange;
    this.panel = byId("settings-panel");
    this.opener = byId("open-settings");
    this.model = byId("model-select");
    this.system = byId("system-prompt");
    this.temperature = byId("temperature");
    this.temperatureValue = byId("temperature-value");
    this.markdown = byId("markdown-toggle");
    this.rlm = byId("rlm-toggle");
    this.thinking = byId("thinking-toggle");
    this.maxTokens = byId("max-tokens");
    this.maxTokens.addEventListener("change", () => this.change({ maxTokens: parseMaxTokens(this.maxTokens.value) }));

    this.fillModels();
    this.opener.addEventListener("click", () => this.toggle());
    this.model.addEventListener("change", () => {
      this.change({ model: this.model.value });
      store.saveSettings({ model: this.model.value });
    });
    this.system.addEventListener("change", () => this.change({ systemPrompt: this.system.value }));
    this.temperature.addEventListener("input", () => this.showTemperature(Number(this.temperature.value)));
    this.temperature.addEventListener("change", () => {
      const value = Number(this.temperature.value);
      this.change({ temperature: value });
      store.saveSettings({ temperature: value });
    });
    this.markdown.addEventListener("change", () => {
      this.change({ markdown: this.markdown.checked });
      store.saveSettings({ markdown: this.markdown.checked });
    });
    this.thinking.addEventListener("change", () => store.saveSettings({ showRlmThinking: this.thinking.checked }));
    store.addEventListener("settings", () => {
      this.thinking.checked = store.settings.showRlmThinking;
    });
    this.rlm.addEventListener("change", () => this.onRlmToggle());
    byId("theme-toggle").addEventListener("click", () => this.cycleTheme());
    this.showTheme();
    const rlm = config.rlm || {};
    byId("rlm-toggle-wrap").hidden = !rlm.enabled;
    byId("rlm-explain").hidden = !rlm.enabled;
    byId("thinking-field").hidden = !rlm.enabled;
  }

  get models() {
    return availableModels(this.config);
  }

  fillModels() {
    fillModelSelect(this.model, this.config, this.models);
    this.model.disabled = this.models.length === 0;
  }

  // The model a conversation uses: its own, else the user's default, else the server's.
  modelFor(conversation) {
    return modelFor(this.config, this.store.settings, conversation);
  }

  temperatureFor(conversation) {
    return temperatureFor(this.config, this.store.settings, conversation);
  }

  show(conversation) {
    this.model.value = this.modelFor(conversation) || "";
    this.system.value = conversation?.systemPrompt || "";
    const temperature = this.temperatureFor(conversation);
    this.temperature.value = String(temperature);
    this.showTemperature(temperature);
    this.markdown.checked = conversation ? conversation.markdown !== false : this.store.settings.markdown;
    this.rlm.checked = Boolean(conversation?.rlm);
    this.maxTokens.value = conversation?.maxTokens ? String(conversation.maxTokens) : "";
    this.thinking.checked = this.store.settings.showRlmThinking;
  }

  showTemperature(value) {
    this.temperatureValue.textContent = value.toFixed(2);
  }

  change(patch) {
    this.onChange(patch);
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.opener.setAttribute("aria-expanded", String(open));
    if (open) this.system.focus();
  }

  cycleTheme() {
    const next = THEMES[(THEMES.indexOf(this.store.settings.theme) + 1) % THEMES.length];
    this.store.saveSettings({ theme: next });
    this.showTheme();
  }

  showTheme() {
    const theme = this.store.settings.theme;
    applyTheme(theme);
    const button = byId("theme-toggle");
    button.setAttribute("aria-label", THEME_LABELS[theme] || THEME_LABELS.system);
    button.title = THEME_LABELS[theme] || THEME_LABELS.system;
    button.dataset.theme = theme;
  }

  async onRlmToggle() {
    if (this.rlm.checked && this.config.rlm?.passcode_required && !rlmPasscode()) {
      const ok = await this.askPasscode();
      if (!ok) {
        this.rlm.checked = false;
        return;
      }
    }
    this.change({ rlm: this.rlm.checked });
  }

  async askPasscode() {
    const passcode = await promptDialog("RLM passcode", {
      label: "Passcode",
      type: "password",
      okLabel: "Unlock",
      text: "RLM runs model-written code in a sandbox, so this server asks for a passcode.",
      validate: async (value) => {
        if (!value) return "Enter the passcode.";
        try {
          return (await validateRlmPasscode(value)) ? null : "That passcode is not right.";
        } catch (error) {
          return error.message;
        }
      },
    });
    if (!passcode) return false;
    rememberPasscode(passcode);
    return true;
  }
}
