// Small DOM helpers shared by the UI modules. Text always goes in through textContent.

export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing element #${id}`);
  return element;
}

export function el(tag, props = {}, children = []) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") element.textContent = value;
    else if (key === "className") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? "" : value);
  }
  element.append(...children.filter(Boolean));
  return element;
}

// Makes `parent`'s children the elements of `items`, in order, keyed by `data-id`: an element
// whose key is still listed is kept (moved when its place changed), never rebuilt, so focus,
// scroll and what a view cached about it survive; a new key gets `create(item)`; an element
// whose key is gone is removed (after `remove(element)`, when given). `update(element, item,
// index, fresh)` runs for every item, after the element is in its place.
export function reconcile(parent, items, { key, create, update, remove }) {
  const existing = new Map();
  for (const child of parent.children) existing.set(child.dataset.id, child);
  items.forEach((item, index) => {
    const id = String(key(item));
    let element = existing.get(id);
    existing.delete(id);
    const fresh = !element;
    if (fresh) {
      element = create(item);
      element.dataset.id = id;
    }
    if (parent.children[index] !== element) parent.insertBefore(element, parent.children[index] || null);
    update?.(element, item, index, fresh);
  });
  for (const element of existing.values()) {
    remove?.(element);
    element.remove();
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  copy: ["M9 9h10v10H9z", "M5 15V5h10"],
  edit: ["M4 20h4L19 9l-4-4L4 16z", "M13.5 6.5l4 4"],
  regenerate: ["M20 11a8 8 0 10-2.3 5.7", "M20 4v7h-7"],
  retry: ["M20 11a8 8 0 10-2.3 5.7", "M20 4v7h-7"],
  trash: ["M5 7h14", "M10 7V4h4v3", "M7 7l1 13h8l1-13"],
  pencil: ["M4 20h4L19 9l-4-4L4 16z"],
  download: ["M12 4v11", "M7 10l5 5 5-5", "M5 19h14"],
  "chevron-left": ["M15 6l-6 6 6 6"],
  "chevron-right": ["M9 6l6 6-6 6"],
  close: ["M6 6l12 12", "M18 6L6 18"],
};

export function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

export function iconButton(name, label, action, extra = {}) {
  const button = el("button", { type: "button", className: "icon-button small", "aria-label": label, title: label, ...extra });
  button.dataset.action = action;
  button.append(icon(name));
  return button;
}

// Notifications sit at the top of the message column, never over the composer. One with the
// same text and kind as a visible one refreshes it (and counts "×2") instead of stacking; each
// has a close button, pauses while hovered or focused, and is announced: errors assertively
// (#toasts-alert, role=alert), the rest politely (#toasts-status, role=status).
const visibleToasts = new Map(); // kind + text → {item, timer, count, timeout}

function armToast(entry) {
  clearTimeout(entry.timer);
  if (entry.timeout) entry.timer = setTimeout(() => dismissToast(entry), entry.timeout);
}

function dismissToast(entry) {
  clearTimeout(entry.timer);
  entry.item.remove();
  visibleToasts.delete(entry.key);
}

export function toast(message, { kind = "info", timeout = 5000 } = {}) {
  const key = `${kind}\n${message}`;
  const known = visibleToasts.get(key);
  if (known) {
    known.count++;
    known.item.querySelector(".toast-count").textContent = `×${known.count}`;
    armToast(known);
    return known.item;
  }
  const close = el("button", { type: "button", className: "toast-close", "aria-label": "Dismiss notification", title: "Dismiss" }, [icon("close")]);
  const item = el("div", { className: `toast ${kind}` }, [
    el("span", { className: "toast-text", text: message }),
    el("span", { className: "toast-count", "aria-hidden": "true" }),
    close,
  ]);
  const entry = { key, item, timer: 0, count: 1, timeout };
  visibleToasts.set(key, entry);
  close.addEventListener("click", () => dismissToast(entry));
  item.addEventListener("mouseenter", () => clearTimeout(entry.timer));
  item.addEventListener("mouseleave", () => armToast(entry));
  item.addEventListener("focusin", () => clearTimeout(entry.timer));
  item.addEventListener("focusout", () => armToast(entry));
  byId(kind === "error" ? "toasts-alert" : "toasts-status").append(item);
  armToast(entry);
  return item;
}

export function downloadFile(name, content, type) {
  const blob = content instanceof Blob ? content : new Blob([content], { type });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function formatTime(ms) {
  const date = new Date(ms);
  const today = new Date();
  if (date.toDateString() === today.toDateString()) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  return date.toLocaleDateString([], { month: "short", day: "numeric" });
}
