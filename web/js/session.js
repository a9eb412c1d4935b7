// Runs the requests of a conversation: send, stop, regenerate, edit & resend, retry.
// Each stream's events go into the store; the views follow the store.

import { ApiError, streamChat } from "./api.js";
import { newId } from "./images.js";
import { suggestTitle } from "./titles.js";
import { startTiming } from "./ui/usage.js";

function base64Of(dataUri) {
  return dataUri.slice(dataUri.indexOf(",") + 1);
}

export class ChatSession {
  constructor({ store, vault, settings, composer, view, config, notify }) {
    this.store = store;
    this.vault = vault;
    this.settings = settings;
    this.composer = composer;
    this.view = view;
    this.config = config;
    this.notify = notify;
    this.active = null; // {conversationId, messageId, controller}
  }

  get busy() {
    return this.active !== null;
  }

  tooLong(text) {
    const limit = this.config.max_message_length;
    if (limit && text.length > limit) {
      this.notify(`The message is ${text.length.toLocaleString()} characters long; this server accepts at most ${limit.toLocaleString()}.`, "error");
      return true;
    }
    return false;
  }

  async send(conversationId, text, attachment) {
    if (this.busy || this.tooLong(text)) return false;
    const message = { role: "user", content: text };
    if (attachment) {
      const id = newId("i");
      message.image = { id, type: attachment.type, name: attachment.name };
      try {
        await this.vault.put(id, attachment.dataUri);
      } catch (error) {
        this.notify(error.message, "error");
      }
    }
    this.store.addMessage(conversationId, message);
    this.run(conversationId);
    return true;
  }

  stop() {
    this.active?.controller.abort();
  }

  dropFrom(conversationId, messageId) {
    const orphans = this.store.truncateFrom(conversationId, messageId);
    this.vault.remove(orphans).catch(() => {});
  }

  regenerate(conversationId, messageId) {
    if (this.busy) return;
    this.dropFrom(conversationId, messageId);
    this.run(conversationId);
  }

  editAndResend(conversationId, messageId, text) {
    if (this.busy || this.tooLong(text)) return;
    const conversation = this.store.get(conversationId);
    const index = conversation.messages.findIndex((m) => m.id === messageId);
    const next = conversation.messages[index + 1];
    this.store.updateMessage(conversationId, messageId, { content: text });
    if (next) this.dropFrom(conversationId, next.id);
    this.run(conversationId);
  }

  async requestBody(conversation) {
    const messages = [];
    if (conversation.systemPrompt?.trim()) messages.push({ role: "system", content: conversation.systemPrompt });
    for (const m of conversation.messages) {
      if (m.role === "assistant" && (m.state === "error" || m.state === "streaming")) continue;
      let content = m.content;
      if (!content && m.generated) content = `[An image was generated for: ${m.generated.prompt}]`;
      const entry = { role: m.role, content };
      if (m.image?.id) {
        const dataUri = await this.vault.get(m.image.id);
        if (dataUri) {
          entry.image = base64Of(dataUri);
          entry.image_type = m.image.type || dataUri.slice(5, dataUri.indexOf(";"));
        }
      }
      if (entry.content || entry.image) messages.push(entry);
    }
    const body = {
      messages,
      model: this.settings.modelFor(conversation),
      temperature: this.settings.temperatureFor(conversation),
    };
    if (conversation.maxTokens) body.max_tokens = conversation.maxTokens;
    if (conversation.rlm && this.config.rlm?.enabled) {
      body.rlm = true;
      body.show_rlm_thinking = this.store.settings.showRlmThinking;
    }
    return body;
  }

  async run(conversationId) {
    const conversation = this.store.get(conversationId);
    const answer = this.store.addMessage(conversationId, { role: "assistant", state: "streaming" });
    const controller = new AbortController();
    this.active = { conversationId, messageId: answer.id, controller };
    this.composer.setBusy(true);
    this.view.setStreaming(answer.id);
    const update = (patch, streaming = true) => this.store.updateMessage(conversationId, answer.id, patch, { streaming });
    let final = { state: "done" };
    try {
      const body = await this.requestBody(conversation);
      const passcode = body.rlm ? this.settings.passcode() : "";
      const seen = { error: null };
      const timing = startTiming();
      for await (const event of streamChat(body, { signal: controller.signal, passcode })) {
        timing.saw(event);
        final = (await this.apply(event, conversationId, answer, update, seen)) || final;
      }
      if (final.usage) final.timing = timing.result();
      const thought = this.store.findMessage(conversationId, answer.id);
      if (thought?.reasoning && thought.reasoningMs === undefined) final.reasoningMs = Date.now() - thought.reasoningStartedAt;
    } catch (error) {
      final = this.failure(error, controller, Boolean(conversation.rlm));
    } finally {
      this.active = null;
      update({ status: undefined, ...final }, false);
      this.composer.setBusy(false);
      this.view.setStreaming(null);
    }
    if (final.state === "done" && !conversation.rlm) suggestTitle(this.store, this.config, conversationId, this.settings.modelFor(conversation));
  }

  // Applies one event; returns the message's final state when the event decides it.
  async apply(event, conversationId, answer, update, seen) {
    switch (event.type) {
      case "content":
        this.store.appendContent(conversationId, answer.id, event.text);
        return null;
      case "reasoning":
        this.store.appendReasoning(conversationId, answer.id, event.text);
        return null;
      case "status":
        update({ status: event.text });
        return null;
      case "rlm":
        this.store.appendRlmStep(conversationId, answer.id, event.step);
        return null;
      case "image": {
        const id = newId("i");
        try {
          await this.vault.put(id, event.image);
        } catch (error) {
          this.notify(error.message, "error");
        }
        const name = `${(event.prompt || "image").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 48) || "image"}.jpg`;
        update({ generated: { id, prompt: event.prompt, name }, status: undefined });
        if (event.text) this.store.appendContent(conversationId, answer.id, event.text);
        return null;
      }
      case "error":
        seen.error = { message: event.message, code: event.code };
        return { state: "error", error: seen.error };
      case "done":
        if (seen.error || event.finishReason === "error") {
          return { state: "error", error: seen.error || { message: "The model failed to answer.", code: "error" } };
        }
        return {
          state: event.finishReason === "cancelled" ? "stopped" : "done",
          finishReason: event.finishReason,
          usage: event.usage,
        };
      case "cutoff":
        return { state: "cutoff" };
      default:
        return null;
    }
  }

  failure(error, controller, rlm) {
    if (controller.signal.aborted) return { state: "stopped" };
    if (error instanceof ApiError) {
      if (rlm && (error.status === 401 || error.status === 403)) {
        this.settings.forgetPasscode();
        this.store.saveSettings({});
      }
      return { state: "error", error: { message: error.message, code: error.code } };
    }
    return { state: "error", error: { message: "Could not reach the server. Check your connection and retry.", code: "network" } };
  }
}
