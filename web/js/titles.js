// A new conversation's title from the model, after its first answer (one cheap call through
// chat-service, where the model's endpoint allows titles); until then, and whenever that
// fails, the first message's text stays the title. A title the user set is never replaced.

import { fetchTitle } from "./api.js";
import { titlesAllowed } from "./model-choice.js";

export async function suggestTitle(store, config, conversationId, model) {
  const conversation = store.get(conversationId);
  if (!conversation || conversation.titleSetByUser || conversation.titleFromModel) return;
  const answered = conversation.messages.filter((m) => m.role === "assistant" && m.state === "done" && m.content);
  if (answered.length !== 1 || !titlesAllowed(config, model)) return;
  const messages = conversation.messages
    .filter((m) => (m.role === "user" || m.role === "assistant") && m.content)
    .slice(0, 2)
    .map((m) => ({ role: m.role, content: m.content }));
  let title;
  try {
    title = await fetchTitle({ messages, model });
  } catch {
    return; // a title is a nicety: the first message's text stays
  }
  const now = store.get(conversationId);
  if (title && now && !now.titleSetByUser) store.update(conversationId, { title: title.slice(0, 200), titleFromModel: true });
}
