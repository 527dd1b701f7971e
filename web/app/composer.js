// The message composer of the open room: text, an attachment, sending, and
// the typing notices it sends while the user writes.

import { api } from "./api.js";
import { $ } from "./dom.js";
import { state } from "./state.js";

const TYPING_EVERY_MS = 3000; // a typing notice again after this while writing

let typingSentAt = 0;
let file = null;
// pending is the Idempotency-Key of a send not yet answered: a retry of
// the same text and file reuses it, so the message is not sent twice.
let pending = null;

/**
 * setupComposer wires the composer; deliver is called with each message the
 * API accepted (the socket brings it too; the caller de-duplicates).
 */
export function setupComposer(deliver, showError) {
  const text = $("composer-text");
  text.addEventListener("input", () => { pending = null; typing(text.value.trim() !== ""); });
  text.addEventListener("blur", () => typing(false));
  $("attach").addEventListener("change", (ev) => pick(ev.target.files[0] || null));
  $("attachment").addEventListener("click", () => pick(null));
  $("composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await send(deliver, showError);
  });
}

async function send(deliver, showError) {
  const text = $("composer-text");
  const body = text.value.trim();
  const room = state.active;
  if ((!body && !file) || room === null) return;
  pending ??= newKey();
  $("send-btn").disabled = true;
  try {
    const m = await api.sendMessage(room, body, file, pending);
    pending = null;
    text.value = "";
    pick(null);
    typing(false);
    showError("");
    deliver(m);
  } catch (err) {
    showError(err.message);
  } finally {
    $("send-btn").disabled = false;
    text.focus();
  }
}

function pick(f) {
  file = f;
  pending = null;
  const chip = $("attachment");
  chip.hidden = !f;
  chip.textContent = f ? `${f.name} ✕` : "";
  chip.title = f ? "Remove the attachment" : "";
  if (!f) $("attach").value = "";
}

/** typing tells the room that the user writes, or stopped writing. */
function typing(on) {
  const socket = state.sockets.get(state.active);
  if (!socket) return;
  const now = Date.now();
  if (on && now - typingSentAt >= TYPING_EVERY_MS) {
    if (socket.send({ type: "typing" })) typingSentAt = now;
  } else if (!on && typingSentAt) {
    socket.send({ type: "typing", is_typing: false });
    typingSentAt = 0;
  }
}

/** resetComposer clears the composer when another room opens. */
export function resetComposer() {
  typing(false);
  $("composer-text").value = "";
  pick(null);
}

// newKey makes an Idempotency-Key (crypto.randomUUID needs a secure
// context; a plain http:// LAN address is not one).
function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
