// The client's state, shared by the modules that render and change it.

export const state = {
  me: 0,                 // the logged-in user's id
  rooms: new Map(),      // chatroom id -> chatroom (with unread_count, last_message)
  sockets: new Map(),    // chatroom id -> RoomSocket
  messages: new Map(),   // chatroom id -> Map(message id -> message), for rooms opened
  typing: new Map(),     // chatroom id -> Map(user id -> expiry in ms)
  active: null,          // the open chatroom's id
};

/** reset forgets everything of a session. */
export function reset() {
  for (const s of state.sockets.values()) s.close();
  state.me = 0;
  state.rooms.clear();
  state.sockets.clear();
  state.messages.clear();
  state.typing.clear();
  state.active = null;
}
