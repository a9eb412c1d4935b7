// Which model and temperature a conversation uses, and whether its endpoint may be asked for
// a title: read from the server's config and the user's settings, shared by the session
// (requests) and the settings panel (what it shows).

export function availableModels(config) {
  const models = (config.models || []).map((m) => (typeof m === "string" ? m : m.id)).filter(Boolean);
  return models.length ? models : [config.default_model].filter(Boolean);
}

// The model a conversation uses: its own, else the user's default, else the server's.
export function modelFor(config, settings, conversation) {
  const models = availableModels(config);
  for (const candidate of [conversation?.model, settings.model, config.default_model]) {
    if (candidate && models.includes(candidate)) return candidate;
  }
  return models[0] || null;
}

export function temperatureFor(config, settings, conversation) {
  for (const candidate of [conversation?.temperature, settings.temperature, config.default_temperature]) {
    if (typeof candidate === "number" && candidate >= 0) return candidate;
  }
  return 0.7;
}

// Whether the model's endpoint may be asked for a title (chat-service decides per endpoint).
export function titlesAllowed(config, model) {
  const groups = Array.isArray(config.model_groups) ? config.model_groups : [];
  return groups.some((g) => g.titles === true && g.models?.includes(model));
}
