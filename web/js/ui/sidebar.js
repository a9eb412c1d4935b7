// The conversation list: newest first, filtered by the search box, updated in place by id.

import { confirmDialog, promptDialog } from "./dialogs.js";
import { byId, el, formatTime, iconButton, reconcile } from "./dom.js";

export class Sidebar {
  constructor(store, { onSelect, onNew, onDelete }) {
    this.store = store;
    this.onSelect = onSelect;
    this.onNew = onNew;
    this.onDelete = onDelete;
    this.activeId = null;
    this.query = "";
    this.list = byId("conversation-list");
    this.search = byId("search");
    this.sidebar = byId("sidebar");
    this.scrim = byId("scrim");
    this.opener = byId("open-sidebar");

    store.addEventListener("list", () => this.render());
    // Every conversation that is answering in this tab is marked, not only the one on screen.
    store.addEventListener("activity", () => {
      for (const item of this.list.children) this.markAnswering(item);
    });
    this.search.addEventListener("input", () => {
      this.query = this.search.value;
      this.render();
    });
    this.list.addEventListener("click", (event) => this.onListClick(event));
    byId("new-chat").addEventListener("click", () => {
      this.closeDrawer();
      this.onNew();
    });
    byId("new-chat-top").addEventListener("click", () => this.onNew());
    this.opener.addEventListener("click", () => this.openDrawer());
    byId("close-sidebar").addEventListener("click", () => this.closeDrawer());
    this.scrim.addEventListener("click", () => this.closeDrawer());
    // The open drawer keeps the focus: the page behind it is inert, Tab wraps around inside
    // it, and Esc closes it wherever the focus is (before Esc could mean "stop the answer").
    document.addEventListener(
      "keydown",
      (event) => {
        if (!this.isOpen) return;
        if (event.key === "Escape") {
          event.preventDefault();
          event.stopPropagation();
          this.closeDrawer();
        } else if (event.key === "Tab") this.keepFocusInside(event);
      },
      true,
    );
    window.matchMedia("(min-width: 821px)").addEventListener("change", (event) => event.matches && this.closeDrawer());
  }

  setActive(id) {
    this.activeId = id;
    for (const item of this.list.children) {
      const link = item.querySelector(".conversation-link");
      const active = item.dataset.id === id;
      item.classList.toggle("active", active);
      if (active) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  markAnswering(item) {
    const answering = this.store.isAnswering(item.dataset.id);
    if (item.classList.contains("answering") === answering) return;
    item.classList.toggle("answering", answering);
    const link = item.querySelector(".conversation-link");
    let badge = link.querySelector(".answering-badge");
    if (answering && !badge) {
      badge = el("span", { className: "answering-badge", text: "Answering…" });
      link.append(badge);
    } else if (!answering) badge?.remove();
  }

  itemFor(conversation) {
    const title = el("span", { className: "conversation-title", text: conversation.title });
    const time = el("time", { className: "conversation-time" });
    const link = el("button", { type: "button", className: "conversation-link" }, [title, time]);
    link.dataset.action = "select";
    const actions = el("div", { className: "conversation-actions" }, [
      iconButton("pencil", "Rename conversation", "rename"),
      iconButton("trash", "Delete conversation", "delete"),
    ]);
    return el("li", { className: "conversation-item" }, [link, actions]);
  }

  updateItem(item, conversation) {
    const title = item.querySelector(".conversation-title");
    if (title.textContent !== conversation.title) title.textContent = conversation.title;
    const time = item.querySelector("time");
    time.textContent = formatTime(conversation.updatedAt);
    time.dateTime = new Date(conversation.updatedAt).toISOString();
    item.querySelector(".conversation-link").title = conversation.title;
    this.markAnswering(item);
  }

  render() {
    const conversations = this.store.list(this.query);
    reconcile(this.list, conversations, {
      key: (conversation) => conversation.id,
      create: (conversation) => this.itemFor(conversation),
      update: (item, conversation) => this.updateItem(item, conversation),
    });
    const empty = byId("list-empty");
    empty.hidden = conversations.length > 0;
    empty.textContent = this.query ? "No conversation matches." : "No conversations yet.";
    this.setActive(this.activeId);
  }

  async onListClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.closest("li")?.dataset.id;
    const conversation = this.store.get(id);
    if (!conversation) return;
    const action = button.dataset.action;
    if (action === "select") {
      this.closeDrawer();
      this.onSelect(id);
    } else if (action === "rename") {
      const title = await promptDialog("Rename conversation", { label: "Title", value: conversation.title });
      if (title?.trim()) this.store.rename(id, title);
    } else if (action === "delete") {
      const ok = await confirmDialog("Delete this conversation?", `“${conversation.title}” will be removed from this browser.`);
      if (ok) this.onDelete(id);
    }
  }

  get isOpen() {
    return this.sidebar.classList.contains("open");
  }

  keepFocusInside(event) {
    const focusable = [...this.sidebar.querySelectorAll("button, input, [href], [tabindex]:not([tabindex='-1'])")].filter(
      (node) => !node.disabled && !node.hidden && node.getClientRects().length > 0,
    );
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable.at(-1);
    const inside = this.sidebar.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  }

  openDrawer() {
    this.sidebar.classList.add("open");
    byId("main").inert = true;
    this.sidebar.setAttribute("aria-modal", "true");
    this.sidebar.setAttribute("role", "dialog");
    this.scrim.hidden = false;
    this.opener.setAttribute("aria-expanded", "true");
    // Not the search box: on a phone that would pop the keyboard over the list.
    byId("close-sidebar").focus();
  }

  closeDrawer() {
    if (!this.isOpen) return;
    this.sidebar.classList.remove("open");
    byId("main").inert = false;
    this.sidebar.removeAttribute("aria-modal");
    this.sidebar.removeAttribute("role");
    this.scrim.hidden = true;
    this.opener.setAttribute("aria-expanded", "false");
    this.opener.focus({ preventScroll: true });
  }
}
