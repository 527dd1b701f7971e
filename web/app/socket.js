// RoomSocket keeps one room's WebSocket open (API.md section 6). A dropped
// connection is reopened with ?since=<position of the last frame heard>, so
// the frames sent meanwhile arrive first, then live ones.

import { ensureFresh } from "./api.js";
import { session } from "./session.js";

const MAX_BACKOFF_MS = 8000;

// Closes after which reconnecting cannot help. The server sends them with
// these reasons; any other close (a network drop, a restart, a socket the
// server dropped as too slow) is resumed.
const FINAL = {
  "left the conversation": "left",
  "not a member": "left",
  "logged out": "logged-out",
};

export class RoomSocket {
  /**
   * @param {number} room
   * @param {{onFrame: (frame: object) => void, onState: (state: string) => void,
   *          onEnd: (why: string) => void}} handlers
   */
  constructor(room, handlers) {
    this.room = room;
    this.handlers = handlers;
    this.position = null; // of the last frame from the log
    this.failures = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
  }

  async open() {
    if (this.stopped) return;
    if (!session.cookieUsable() && !(await ensureFresh())) return;
    if (this.stopped) return;
    // A socket without a position starts at the server's present: what
    // came before it is loaded over REST once it is open ("fresh").
    const fresh = !this.position;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    this.setState("connecting");
    ws.onopen = () => { this.failures = 0; this.setState("open", fresh); };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => this.closed(ws, ev);
  }

  // url authenticates with the login cookie while its token lives, and
  // with the current access token in the query after that (a refresh
  // does not renew the cookie).
  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams();
    if (this.position) params.set("since", this.position);
    if (!session.cookieUsable()) params.set("token", session.access);
    const q = params.toString();
    return `${proto}//${location.host}/ws/chat/${this.room}/${q ? `?${q}` : ""}`;
  }

  receive(data) {
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (frame.position) this.position = frame.position;
    this.handlers.onFrame(frame);
  }

  closed(ws, ev) {
    if (ws !== this.ws || this.stopped) return;
    this.ws = null;
    const final = FINAL[ev.reason];
    if (final) {
      this.stopped = true;
      this.setState("closed");
      this.handlers.onEnd(final);
      return;
    }
    this.failures++;
    this.setState("reconnecting");
    this.schedule();
  }

  schedule() {
    const base = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.failures, 6));
    const delay = base / 2 + Math.random() * base / 2;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** retryNow reconnects at once (the network came back). */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.open();
  }

  /** send sends a frame when the socket is open; it reports whether it did. */
  send(frame) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  get isOpen() { return this.ws?.readyState === WebSocket.OPEN; }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
  }

  setState(state, fresh = false) {
    this.state = state;
    this.handlers.onState(state, fresh);
  }
}
