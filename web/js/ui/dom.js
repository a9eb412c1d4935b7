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

let toastCount = 0;

export function toast(message, { kind = "info", timeout = 5000 } = {}) {
  const region = byId("toasts");
  const item = el("div", { className: `toast ${kind}`, role: kind === "error" ? "alert" : null, text: message });
  item.dataset.toast = String(++toastCount);
  region.append(item);
  if (timeout) setTimeout(() => item.remove(), timeout);
  item.addEventListener("click", () => item.remove());
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
