// The evchat web client: login, the rooms list, and the open room, live
// over one WebSocket per room.

import { api, ApiError, forgetMedia, whenSessionLost } from "./api.js";
import { resetComposer, setupComposer } from "./composer.js";
import { $, show } from "./dom.js";
import { session } from "./session.js";
import { RoomSocket } from "./socket.js";
import { reset, state } from "./state.js";
import * as view from "./views.js";

const TYPING_SHOWN_MS = 8000; // a typing notice shows this long unless renewed

// ---- screens and session ----

function showAuth(message = "") {
  show($("auth"), [$("auth"), $("chat")]);
  $("auth-error").textContent = message;
  $("username").focus();
}

async function authenticate(register) {
  const form = $("auth-form");
  if (!form.reportValidity()) return;
  const username = $("username").value.trim();
  const password = $("password").value;
  $("auth-error").textContent = "";
  try {
    if (register) await api.register(username, password);
    session.start(await login(username, password, register ? 3 : 0));
    $("password").value = "";
    enterChat();
  } catch (err) {
    $("auth-error").textContent = err.message;
  }
}

// login logs in; just after registering it tries again a few times, as
// the new account may take a moment to become visible to login.
async function login(username, password, retries) {
  for (let i = 0; ; i++) {
    try {
      return await api.login(username, password);
    } catch (err) {
      if (i >= retries || !(err instanceof ApiError) || err.status !== 401) throw err;
      await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** i));
    }
  }
}

function enterChat() {
  state.me = session.user.id;
  $("me-name").textContent = session.user.username;
  $("me-avatar").textContent = session.user.username.slice(0, 1).toUpperCase();
  show($("chat"), [$("auth"), $("chat")]);
  closeRoom();
  loadRooms().catch((err) => sideError(err.message));
}

function endSession(message) {
  reset();
  session.end();
  forgetMedia();
  showAuth(message);
}

async function logout() {
  try { await api.logout(); } catch { /* the session ends here either way */ }
  endSession("");
}

// ---- rooms ----

// roomsAsked numbers the list's requests: only the latest answer applies
// (an earlier one may predate reads and messages seen since).
let roomsAsked = 0;

async function loadRooms() {
  const asked = ++roomsAsked;
  const list = await api.rooms();
  if (asked !== roomsAsked) return;
  const seen = new Set();
  for (const room of list) {
    seen.add(room.id);
    state.rooms.set(room.id, room);
    ensureSocket(room.id);
  }
  for (const id of [...state.rooms.keys()]) if (!seen.has(id)) forgetRoom(id);
  // The open room's count may predate the reads of what it shows.
  if (state.active !== null) markRead(state.active);
  renderRooms();
}

// refreshRooms reloads the list once, however many ask within a moment.
let refreshTimer = null;
function refreshRooms() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadRooms().catch((err) => sideError(err.message)), 300);
}

function renderRooms() {
  const rooms = [...state.rooms.values()].sort((a, b) => view.activity(b) - view.activity(a) || b.id - a.id);
  $("rooms").replaceChildren(...rooms.map((r) =>
    view.roomItem(r, { active: r.id === state.active, me: state.me, onOpen: openRoom })));
  $("rooms-empty").hidden = rooms.length > 0;
}

function ensureSocket(id) {
  if (state.sockets.has(id)) return;
  const socket = new RoomSocket(id, {
    onFrame: (frame) => onFrame(id, frame),
    onState: (s, fresh) => onSocketState(id, s, fresh),
    onEnd: (why) => (why === "logged-out" ? endSession("You were logged out.") : forgetRoom(id)),
  });
  state.sockets.set(id, socket);
  socket.open();
}

// A socket that starts without a position starts at the server's present:
// what came before is read over REST now that it listens.
function onSocketState(id, s, fresh) {
  if (id === state.active) renderConn();
  // A socket that keeps failing may be refused for good (the user was
  // removed, or the room is gone): the rooms list tells, and forgets it.
  if (s === "reconnecting" && state.sockets.get(id)?.failures % 3 === 0) refreshRooms();
  if (s !== "open" || !fresh) return;
  if (state.messages.has(id) || id === state.active) loadHistory(id).catch((err) => roomError(err.message));
  else refreshRooms(); // unread counts of the moment the socket started
}

function forgetRoom(id) {
  state.sockets.get(id)?.close();
  state.sockets.delete(id);
  state.rooms.delete(id);
  state.messages.delete(id);
  state.typing.delete(id);
  if (state.active === id) closeRoom();
  renderRooms();
}

async function createRoom(ev) {
  ev.preventDefault();
  const name = $("room-name").value.trim();
  const body = { type: $("room-type").value };
  if (name) body.name = name;
  try {
    const room = await api.createRoom(body);
    room.unread_count = 0;
    state.rooms.set(room.id, room);
    ensureSocket(room.id);
    $("room-name").value = "";
    sideError("");
    openRoom(room.id);
  } catch (err) {
    sideError(err.message);
  }
}

async function joinRoom(ev) {
  ev.preventDefault();
  const id = Number($("join-id").value);
  try {
    await api.joinRoom(id);
    await loadRooms();
    $("join-id").value = "";
    sideError("");
    openRoom(id);
  } catch (err) {
    sideError(err.message);
  }
}

async function leaveRoom() {
  const id = state.active;
  if (id === null || !confirm(`Leave ${view.roomTitle(state.rooms.get(id))}?`)) return;
  try {
    await api.leaveRoom(id);
    forgetRoom(id);
  } catch (err) {
    roomError(err.message);
  }
}

// ---- the open room ----

function openRoom(id) {
  if (!state.rooms.has(id)) return;
  if (state.active !== id) resetComposer();
  state.active = id;
  const room = state.rooms.get(id);
  $("no-room").hidden = true;
  $("room-view").hidden = false;
  $("room-view").dataset.room = id;
  $("room-title").textContent = view.roomTitle(room);
  $("room-info").textContent = view.roomInfo(room);
  $("messages").replaceChildren();
  $("older-btn").hidden = true;
  roomError("");
  renderConn();
  renderTyping();
  renderRooms();
  const known = state.messages.get(id);
  if (known) renderMessages(id, [...known.values()]);
  loadHistory(id).catch((err) => roomError(err.message));
  $("composer-text").focus();
}

function closeRoom() {
  state.active = null;
  $("room-view").hidden = true;
  $("no-room").hidden = false;
}

function roomMessages(id) {
  if (!state.messages.has(id)) state.messages.set(id, new Map());
  return state.messages.get(id);
}

async function loadHistory(id, before) {
  const page = await api.messages(id, before);
  const known = roomMessages(id);
  for (const m of page) known.set(m.id, m);
  if (id !== state.active) return;
  if (!before || page.length) $("older-btn").hidden = page.length < 50;
  renderMessages(id, page, Boolean(before));
  markRead(id);
}

async function loadOlder() {
  const id = state.active;
  const first = Math.min(...roomMessages(id).keys());
  if (Number.isFinite(first)) await loadHistory(id, first).catch((err) => roomError(err.message));
}

function renderMessages(id, list, older = false) {
  const scroller = $("scroller");
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const atBottom = fromBottom - scroller.clientHeight < 60;
  for (const m of list) upsertMessage(m);
  if (older) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  else if (atBottom || list.some((m) => m.sender === state.me)) scroller.scrollTop = scroller.scrollHeight;
}

function upsertMessage(m) {
  const list = $("messages");
  const li = list.querySelector(`li[data-id="${m.id}"]`);
  if (li) view.updateTick(li, m, state.me);
  else view.insertByID(list, view.messageItem(m, state.me));
}

/** markRead marks what the user sees of a room read, when the tab shows. */
let reading = Promise.resolve();
function markRead(id) {
  if (id !== state.active || document.visibilityState !== "visible") return;
  const known = roomMessages(id);
  const ids = [...known.values()]
    .filter((m) => m.receivers.includes(state.me) && !m.read_by.includes(state.me))
    .map((m) => m.id);
  const room = state.rooms.get(id);
  if (room && room.unread_count) { room.unread_count = 0; renderRooms(); }
  if (ids.length === 0) return;
  for (const mid of ids) known.get(mid).read_by.push(state.me);
  reading = reading.then(() => api.markRead(id, ids)).catch((err) => {
    for (const mid of ids) unmarkRead(known.get(mid));
    roomError(err.message);
  });
}

function unmarkRead(m) {
  if (m) m.read_by = m.read_by.filter((u) => u !== state.me);
}

// ---- frames ----

function onFrame(id, frame) {
  switch (frame.type) {
    case "message": return receiveMessage(stripFrame(frame));
    case "read": return receiveRead(id, frame);
    case "typing": return receiveTyping(id, frame);
    case "member_joined":
    case "member_left": return memberChanged(id, frame);
    case "error": return id === state.active ? roomError(frame.detail) : undefined;
    default: return undefined; // frames this client does not show
  }
}

function stripFrame(frame) {
  const { type: _type, position: _position, ...m } = frame;
  return m;
}

/** receiveMessage shows a message, whether from the socket or a send. */
function receiveMessage(m) {
  const room = state.rooms.get(m.conversation);
  if (!room) return;
  const isNew = !room.last_message || m.id > room.last_message.id;
  if (isNew) room.last_message = m;
  const known = state.messages.get(m.conversation);
  const seen = known?.has(m.id);
  if (known && !seen) known.set(m.id, m);
  if (m.sender !== state.me) clearTyping(m.conversation, m.sender);
  if (m.conversation === state.active) {
    if (!seen) renderMessages(m.conversation, [m]);
    markRead(m.conversation);
  } else if (isNew && m.sender !== state.me && m.receivers.includes(state.me)) {
    room.unread_count = (room.unread_count || 0) + 1;
  }
  renderRooms();
}

function receiveRead(id, frame) {
  const known = state.messages.get(id);
  const room = state.rooms.get(id);
  for (const mid of frame.message_ids) {
    const targets = [known?.get(mid), room?.last_message?.id === mid ? room.last_message : null];
    for (const m of targets) {
      if (m && !m.read_by.includes(frame.reader)) m.read_by.push(frame.reader);
    }
    if (id === state.active && known?.has(mid)) upsertMessage(known.get(mid));
  }
}

function memberChanged(id, frame) {
  const room = state.rooms.get(id);
  if (!room) return;
  const joined = frame.type === "member_joined";
  if (frame.user === state.me && !joined) { forgetRoom(id); return; }
  const members = new Set(room.members);
  if (joined) members.add(frame.user); else members.delete(frame.user);
  room.members = [...members].sort((a, b) => a - b);
  if (id === state.active) {
    $("room-info").textContent = view.roomInfo(room);
    $("messages").append(view.notice(`${view.who(frame.user, state.me)} ${joined ? "joined" : "left"}`));
  }
}

// ---- typing ----

function receiveTyping(id, frame) {
  if (frame.sender === state.me) return;
  if (!state.typing.has(id)) state.typing.set(id, new Map());
  if (frame.is_typing === false) state.typing.get(id).delete(frame.sender);
  else state.typing.get(id).set(frame.sender, Date.now() + TYPING_SHOWN_MS);
  renderTyping();
  setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
}

function clearTyping(id, user) {
  if (state.typing.get(id)?.delete(user)) renderTyping();
}

function renderTyping() {
  const now = Date.now();
  const typists = [...(state.typing.get(state.active)?.entries() ?? [])]
    .filter(([, until]) => until > now).map(([user]) => user);
  $("typing").textContent = view.typingLine(typists, state.me);
}

// ---- status lines ----

function renderConn() {
  const s = state.sockets.get(state.active)?.state ?? "closed";
  const label = { open: "live", connecting: "connecting…", reconnecting: "reconnecting…", closed: "offline" }[s];
  $("conn-status").textContent = label;
  $("conn-status").dataset.state = s;
}

function sideError(text) { $("side-error").textContent = text; }
function roomError(text) { $("room-error").textContent = text; }

// ---- start ----

function boot() {
  $("auth-form").addEventListener("submit", (ev) => { ev.preventDefault(); authenticate(false); });
  $("register-btn").addEventListener("click", () => authenticate(true));
  $("logout-btn").addEventListener("click", logout);
  $("create-form").addEventListener("submit", createRoom);
  $("join-form").addEventListener("submit", joinRoom);
  $("leave-btn").addEventListener("click", leaveRoom);
  $("older-btn").addEventListener("click", loadOlder);
  setupComposer(receiveMessage, roomError);
  whenSessionLost(() => endSession("Your session has ended: log in again."));
  document.addEventListener("visibilitychange", () => { if (state.active !== null) markRead(state.active); });
  window.addEventListener("online", () => { for (const s of state.sockets.values()) s.retryNow(); });
  if (session.loggedIn) enterChat(); else showAuth();
}

boot();
