// Rendering of rooms and messages. Functions here build or patch DOM from
// API objects; they keep no state of their own.

import { mediaURL } from "./api.js";
import { el, time } from "./dom.js";

/** who names a user: the API gives only ids of other users. */
export function who(id, me) {
  return id === me ? "You" : `User ${id}`;
}

export function roomTitle(room) {
  if (room.name) return room.name;
  return room.type === "chat" ? `Direct chat ${room.id}` : `Group ${room.id}`;
}

export function roomInfo(room) {
  const n = room.members.length;
  const kind = room.type === "chat" ? "direct chat" : "group";
  return `No. ${room.id} · ${kind} · ${n} member${n === 1 ? "" : "s"}`;
}

/** activity orders rooms as the API does: latest message, else creation. */
export function activity(room) {
  return Date.parse(room.last_message?.created_at ?? room.created_at) || 0;
}

function preview(m, me) {
  if (!m) return "No messages yet";
  const what = m.text || (m.attachment_video ? "Video" : m.attachment_picture ? "Picture" : "");
  return m.sender === me ? `You: ${what}` : what;
}

/** roomItem is one entry of the rooms list. */
export function roomItem(room, { active, me, onOpen }) {
  const unread = room.unread_count || 0;
  return el("li", {
    class: active ? "active" : "", dataset: { room: room.id },
    onclick: () => onOpen(room.id),
  },
  el("span", { class: "title" }, roomTitle(room)),
  el("span", { class: "when" }, room.last_message ? time(room.last_message.created_at) : ""),
  el("span", { class: "preview" }, preview(room.last_message, me)),
  unread > 0 ? el("span", { class: "unread", title: `${unread} unread` }, String(unread)) : el("span"));
}

/**
 * tick is the read state of one's own message: ✓ sent, ✓✓ read by some
 * receivers, and blue ✓✓ read by all of them.
 */
function tick(m, me) {
  const readers = m.read_by.filter((id) => id !== me);
  const all = m.receivers.length > 0 && m.receivers.every((id) => readers.includes(id));
  const title = readers.length ? `Read by ${readers.map((id) => who(id, me)).join(", ")}` : "Sent";
  return el("span", { class: `tick${all ? " read" : ""}${readers.length ? " seen" : ""}`, title },
    readers.length ? "✓✓" : "✓");
}

function attachment(m) {
  if (m.attachment_picture) {
    const img = el("img", { alt: "Picture", loading: "lazy" });
    mediaURL(m.attachment_picture).then((src) => { img.src = src; }, () => { img.alt = "Picture (unavailable)"; });
    return img;
  }
  if (m.attachment_video) {
    const video = el("video", { controls: true, preload: "metadata" });
    mediaURL(m.attachment_video).then((src) => { video.src = src; }, () => video.replaceWith("Video (unavailable)"));
    return video;
  }
  return null;
}

/** messageItem is one message of the open room. */
export function messageItem(m, me) {
  const mine = m.sender === me;
  return el("li", { class: `message${mine ? " mine" : ""}`, dataset: { id: m.id } },
    mine ? null : el("div", { class: "sender" }, who(m.sender, me)),
    attachment(m),
    m.text ? el("div", { class: "text" }, m.text) : null,
    el("div", { class: "meta" }, time(m.created_at), mine ? tick(m, me) : null));
}

/** updateTick redraws the read state of a rendered message. */
export function updateTick(li, m, me) {
  const old = li.querySelector(".tick");
  if (old) old.replaceWith(tick(m, me));
}

/** insertByID puts a message item in id order (a room's log order). */
export function insertByID(list, li) {
  const id = Number(li.dataset.id);
  let after = null;
  for (const c of list.children) {
    if (c.dataset.id && Number(c.dataset.id) > id) { after = c; break; }
  }
  list.insertBefore(li, after);
}

export function notice(text) {
  return el("li", { class: "notice" }, text);
}

/** typingLine says who is typing in the open room. */
export function typingLine(users, me) {
  if (users.length === 0) return "";
  const names = users.map((id) => who(id, me));
  return `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}
