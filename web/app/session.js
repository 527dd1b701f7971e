// The logged-in session: the token pair and the user, kept in
// sessionStorage so that a reload of the tab stays logged in (and a new
// tab or a closed browser does not).

const KEY = "evchat.session";

function load() {
  try { return JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch { return {}; }
}

/** expiry returns the expiry of a JWT in ms since the epoch (0 if unknown). */
export function expiry(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).exp * 1000 || 0;
  } catch { return 0; }
}

export const session = {
  ...load(),

  get loggedIn() { return Boolean(this.access && this.user); },

  /** start records a login; its access token is also the cookie's. */
  start({ access, refresh, user }) {
    Object.assign(this, { access, refresh, user, cookieAccess: access });
    this.save();
  },

  /** update records a refreshed pair (the cookie keeps the login's token). */
  update({ access, refresh }) {
    Object.assign(this, { access, refresh });
    this.save();
  },

  /**
   * cookieUsable tells whether the chat_access cookie that login set still
   * holds a live token: the WebSocket then needs no token in its URL.
   */
  cookieUsable() {
    return Boolean(this.cookieAccess) && expiry(this.cookieAccess) > Date.now() + 5000;
  },

  end() {
    for (const k of ["access", "refresh", "user", "cookieAccess"]) delete this[k];
    sessionStorage.removeItem(KEY);
  },

  save() {
    const { access, refresh, user, cookieAccess } = this;
    sessionStorage.setItem(KEY, JSON.stringify({ access, refresh, user, cookieAccess }));
  },
};
