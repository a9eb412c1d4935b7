// The model picker: one list, or the models grouped by endpoint (<optgroup>) when
// chat-service serves several (CHAT_ENDPOINTS); and the per-conversation max-tokens value.

import { el, reconcile } from "./dom.js";

// [{label, models: [id…]}] when there is more than one endpoint; otherwise null.
export function modelGroups(config) {
  const groups = Array.isArray(config.model_groups) ? config.model_groups.filter((g) => g?.models?.length) : [];
  if (groups.length < 2 && !groups.some((g) => g.endpoint)) return null;
  return groups.map((g) => ({ label: g.label || g.endpoint, endpoint: g.endpoint, models: g.models }));
}

// A grouped model's option shows its own id, without the endpoint prefix the group names.
function shortName(id, endpoint) {
  return endpoint && id.startsWith(endpoint + "/") ? id.slice(endpoint.length + 1) : id;
}

function fillOptions(parent, models, endpoint) {
  reconcile(parent, models, {
    key: (m) => m,
    create: (m) => el("option", { value: m }),
    update: (option, m) => {
      option.textContent = shortName(m, endpoint);
    },
  });
}

export function fillModelSelect(select, config, models) {
  const groups = modelGroups(config);
  if (!groups) {
    fillOptions(select, models, null);
    return;
  }
  reconcile(select, groups, {
    key: (g) => `group:${g.label}`,
    create: (g) => el("optgroup", { label: g.label }),
    update: (optgroup, g) => fillOptions(optgroup, g.models, g.endpoint),
  });
}

// A positive whole number, or null for "the model's own limit".
export function parseMaxTokens(value) {
  const n = Number(String(value ?? "").trim());
  return Number.isInteger(n) && n > 0 && n <= 1_000_000 ? n : null;
}
