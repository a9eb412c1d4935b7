// Runs the requests of the conversations: send, stop, regenerate, edit & resend, retry.
// Each conversation streams on its own, several at once; each stream's events, which
// conversations are answering ("activity") and what the user should be told ("notice") go
// into the store, and the views follow the store. Nothing here knows the screen.

import { ApiError, streamChat } from "./api.js";
import { bodyWithDocuments, inlineDocuments } from "./documents.js";
import { newId } from "./ids.js";
import { modelFor, temperatureFor } from "./model-choice.js";
import { forgetPasscode, rlmPasscode } from "./passcode.js";
import { startTiming } from "./timing.js";
import { suggestTitle } from "./titles.js";

function base64Of(dataUri) {
  return dataUri.slice(dataUri.indexOf(",") + 1);
}

export class ChatSession {
  constructor({ store, vault, documents, config }) {
    this.store = store;
    this.vault = vault;
    this.documents = documents; // DocumentVault: the attached documents' texts
    this.config = config;
    this.active = new Map(); // conversationId → {messageId, controller}
  }

  isBusy(conversationId) {
    return this.active.has(conversationId);
  }

  notify(message, kind) {
    this.store.notify(message, kind);
  }

  modelFor(conversation) {
    return modelFor(this.config, this.store.settings, conversation);
  }

  tooLong(text) {
    const limit = this.config.max_message_length;
    if (limit && text.length > limit) {
      this.notify(`The message is ${text.length.toLocaleString()} characters long; this server accepts at most ${limit.toLocaleString()}.`, "error");
      return true;
    }
    return false;
  }

  // Whether the documents can go with this request: in a normal chat they become part of
  // the message, so they must fit the model's budget; with RLM they are the job's context.
  documentsFit(conversation, text, documents) {
    if (!documents.length) return true;
    const chars = documents.reduce((sum, d) => sum + d.text.length, 0);
    if (conversation?.rlm && this.config.rlm?.enabled) {
      const limit = this.config.rlm_max_request_bytes;
      const bytes = documents.reduce((sum, d) => sum + new Blob([d.text]).size, 0);
      if (limit && bytes > limit) {
        this.notify(`The documents are ${(bytes / 1048576).toFixed(1)} MB; this server takes at most ${(limit / 1048576).toFixed(0)} MB per RLM request.`, "error");
        return false;
      }
      if (!text) {
        this.notify("Ask a question about the documents: with RLM, your message is the question.", "error");
        return false;
      }
      return true;
    }
    const limit = this.config.max_message_length;
    const total = inlineDocuments(text, documents).length;
    if (limit && total > limit) {
      const rlm = this.config.rlm?.enabled ? " Turn on RLM to ask about documents this large: they then become the job's context instead of part of the message." : "";
      this.notify(`The documents and message are ${chars.toLocaleString()} characters; this model accepts at most ${limit.toLocaleString()} in one message.${rlm}`, "error");
      return false;
    }
    return true;
  }

  async send(conversationId, text, attachment, documents = []) {
    if (this.isBusy(conversationId) || this.tooLong(text)) return false;
    if (!this.documentsFit(this.store.get(conversationId), text, documents)) return false;
    const message = { role: "user", content: text };
    if (documents.length) {
      message.attachments = [];
      for (const document of documents) {
        const id = newId("d");
        try {
          await this.documents.put(id, document.text);
        } catch (error) {
          this.notify(error.message, "error");
        }
        message.attachments.push({ id, name: document.name, type: document.type, size: document.size, chars: document.text.length });
      }
    }
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

  stop(conversationId) {
    this.active.get(conversationId)?.controller.abort();
  }

  stopAll() {
    for (const { controller } of this.active.values()) controller.abort();
  }

  // Regenerate and retry: the answer (and whatever followed it) stays as a branch.
  regenerate(conversationId, messageId) {
    if (this.isBusy(conversationId)) return;
    if (this.store.fork(conversationId, messageId)) this.run(conversationId);
  }

  // The edited text becomes a new version of the message; the old one and its answers stay
  // as a branch.
  editAndResend(conversationId, messageId, text) {
    if (this.isBusy(conversationId) || this.tooLong(text)) return;
    const original = this.store.findMessage(conversationId, messageId);
    if (!original || !this.store.fork(conversationId, messageId)) return;
    const edited = { role: "user", content: text };
    if (original.image) edited.image = { ...original.image };
    this.store.addMessage(conversationId, edited);
    this.run(conversationId);
  }

  async requestBody(conversation) {
    const rlm = Boolean(conversation.rlm && this.config.rlm?.enabled);
    const messages = [];
    if (conversation.systemPrompt?.trim()) messages.push({ role: "system", content: conversation.systemPrompt });
    for (const m of conversation.messages) {
      if (m.role === "assistant" && (m.state === "error" || m.state === "streaming")) continue;
      let content = m.content;
      if (!content && m.generated) content = `[An image was generated for: ${m.generated.prompt}]`;
      if (m.attachments?.length && !rlm) content = inlineDocuments(content, await this.attachedTexts(m.attachments));
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
      model: this.modelFor(conversation),
      temperature: temperatureFor(this.config, this.store.settings, conversation),
    };
    if (conversation.maxTokens) body.max_tokens = conversation.maxTokens;
    if (rlm) {
      body.rlm = true;
      body.show_rlm_thinking = this.store.settings.showRlmThinking;
      const attachments = conversation.messages.flatMap((m) => m.attachments || []);
      if (attachments.length) return bodyWithDocuments(body, attachments, this.documents);
    }
    return body;
  }

  async attachedTexts(attachments) {
    const texts = [];
    for (const a of attachments) {
      const text = await this.documents.getText(a.id);
      if (text === null) throw new Error(`The text of “${a.name}” is no longer stored in this browser.`);
      texts.push({ name: a.name, text });
    }
    return texts;
  }

  async run(conversationId) {
    const conversation = this.store.get(conversationId);
    const answer = this.store.addMessage(conversationId, { role: "assistant", state: "streaming" });
    const controller = new AbortController();
    this.active.set(conversationId, { messageId: answer.id, controller });
    this.store.setAnswering(conversationId, true);
    const update = (patch, streaming = true) => this.store.updateMessage(conversationId, answer.id, patch, { streaming });
    let final = { state: "done" };
    try {
      const body = await this.requestBody(conversation);
      const passcode = conversation.rlm && this.config.rlm?.enabled ? rlmPasscode() : "";
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
      this.active.delete(conversationId);
      update({ status: undefined, finishedAt: Date.now(), ...final }, false);
      this.store.setAnswering(conversationId, false);
    }
    if (final.state === "done" && !conversation.rlm) suggestTitle(this.store, this.config, conversationId, this.modelFor(conversation));
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
        forgetPasscode();
        this.store.saveSettings({});
      }
      return { state: "error", error: { message: error.message, code: error.code } };
    }
    // fetch fails with a TypeError; anything else (a document gone from storage) says what.
    if (!(error instanceof TypeError) && error?.message) return { state: "error", error: { message: error.message, code: "documents" } };
    return { state: "error", error: { message: "Could not reach the server. Check your connection and retry.", code: "network" } };
  }
}
