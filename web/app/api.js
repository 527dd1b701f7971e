// REST calls of the chat API (see API.md). Every call but register, login
// and refresh carries the access token as a Bearer header; an expired
// access token is refreshed once and the call retried.

import { expiry, session } from "./session.js";

/** ApiError is a refusal of the API, with its status and parsed body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

// describe turns the API's error shapes into one line: {"detail": "..."}
// or {"field": ["message", ...], ...}.
function describe(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && typeof body === "object") {
    const parts = Object.entries(body).map(([field, msgs]) =>
      `${field}: ${[].concat(msgs).join(" ")}`);
    if (parts.length) return parts.join("; ");
  }
  return `Request failed (${status})`;
}

// onSessionLost is called when the session cannot be renewed.
let onSessionLost = () => {};
export function whenSessionLost(fn) { onSessionLost = fn; }

async function send(method, path, { json, form, headers = {}, auth = true } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form; // the browser sets the multipart boundary
  }
  if (auth && session.access) init.headers.Authorization = `Bearer ${session.access}`;
  const res = await fetch(path, init);
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

// call is send with one refresh of an expired access token.
async function call(method, path, opts) {
  try {
    return await send(method, path, opts);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401 || !session.refresh) throw err;
    const renewed = await refresh();
    if (renewed === "rejected") onSessionLost();
    if (renewed !== "ok") throw err;
    return send(method, path, opts);
  }
}

/**
 * ensureFresh renews the access token when it expires within a minute (a
 * WebSocket upgrade cannot be retried after a 401 the way a call can). When
 * the session cannot be renewed, the session is lost.
 */
export async function ensureFresh() {
  if (expiry(session.access) > Date.now() + 60_000) return true;
  if ((await refresh()) !== "rejected") return true; // unreachable: the socket backs off and tries again
  onSessionLost();
  return false;
}

let refreshing = null;

/**
 * refresh renews the token pair once, however many calls ask at once. It
 * resolves to "ok", "rejected" (the session is over: logged out, expired)
 * or "unreachable" (the server could not answer; the session may be fine).
 */
export function refresh() {
  refreshing ??= send("POST", "/auth/refresh/", { json: { refresh: session.refresh }, auth: false })
    .then((pair) => { session.update(pair); return "ok"; })
    .catch((err) => (err instanceof ApiError && err.status < 500 && err.status !== 429 ? "rejected" : "unreachable"))
    .finally(() => { refreshing = null; });
  return refreshing;
}

export const api = {
  register: (username, password) =>
    send("POST", "/auth/register/", { json: { username, password }, auth: false }),
  // Login also sets the chat_access cookie (HttpOnly) that the WebSocket
  // authenticates with.
  login: (username, password) =>
    send("POST", "/auth/login/", { json: { username, password }, auth: false }),
  logout: () => call("POST", "/auth/logout/"),
  rooms: () => call("GET", "/list-chatrooms/"),
  createRoom: (room) => call("POST", "/create-chatroom/", { json: room }),
  joinRoom: (id) => call("POST", "/join-chatroom/", { json: { chatroom_id: id } }),
  leaveRoom: (id) => call("DELETE", `/leave-chatroom/${id}/`),
  messages: (room, before) =>
    call("GET", `/list-conversation-messages/${room}/?limit=50${before ? `&before=${before}` : ""}`),
  // A retry of the same send (same key) returns the first message.
  sendMessage: (room, text, file, key) => {
    const headers = { "Idempotency-Key": key };
    if (!file) return call("POST", "/send-message/", { json: { conversation_id: room, text }, headers });
    const form = new FormData();
    form.append("conversation_id", String(room));
    if (text) form.append("text", text);
    form.append(file.type.startsWith("video/") ? "attachment_video" : "attachment_picture", file);
    return call("POST", "/send-message/", { form, headers });
  },
  markRead: (room, ids) =>
    call("POST", "/read-message/", { json: { conversation_id: room, message_ids: ids } }),
};

/**
 * mediaURL fetches an attachment with the access token (an <img> cannot
 * send one) and returns a blob: URL for it, fetched once per attachment.
 */
const media = new Map();
export function mediaURL(url) {
  if (!media.has(url)) {
    const path = new URL(url, location.href).pathname; // same origin, whatever host the server named
    const p = fetchMedia(path).catch((err) => { media.delete(url); throw err; });
    media.set(url, p);
  }
  return media.get(url);
}

async function fetchMedia(path) {
  let res = await fetch(path, { headers: { Authorization: `Bearer ${session.access}` } });
  if (res.status === 401 && (await refresh()) === "ok") {
    res = await fetch(path, { headers: { Authorization: `Bearer ${session.access}` } });
  }
  if (!res.ok) throw new ApiError(res.status, null);
  return URL.createObjectURL(await res.blob());
}

/** forgetMedia releases every fetched attachment (at logout). */
export function forgetMedia() {
  for (const p of media.values()) p.then(URL.revokeObjectURL, () => {});
  media.clear();
}
