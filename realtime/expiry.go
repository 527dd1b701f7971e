package realtime

import (
	"time"

	"github.com/google/uuid"
)

// CloseTokenExpired closes a connection whose access token expired and was
// not replaced in-band.
const CloseTokenExpired = 4001

var (
	tokenExpiredClose = &closeMsg{CloseTokenExpired, "token expired"}
	// foreignTokenClose: an in-band token of another user.
	foreignTokenClose = &closeMsg{ClosePolicyViolation, "token of another user"}
)

// ExpireAt closes the session with CloseTokenExpired at at, the expiry of
// the access token it was opened or last authenticated with; called again
// (an in-band token), it moves the close to the new time. A session that
// has ended is left alone.
func (h *Hub) ExpireAt(so *Session, at time.Time) {
	d := at.Sub(h.cfg.Clock.Now())
	so.mu.Lock()
	if so.removed || so.state == Closing {
		so.mu.Unlock()
		return
	}
	if so.stopExpiry != nil {
		so.stopExpiry()
		so.stopExpiry = nil
	}
	if d > 0 {
		so.stopExpiry = h.cfg.Clock.AfterFunc(d, func() { h.closeNow(so, tokenExpiredClose) })
	}
	so.mu.Unlock()
	if d <= 0 {
		h.closeNow(so, tokenExpiredClose)
	}
}

// Reauthenticated extends a session with a new access token of its user:
// it closes at that token's expiry, and belongs to that token's login
// session from now on (a logout of it closes the socket).
func (h *Hub) Reauthenticated(so *Session, session uuid.UUID, expires time.Time) {
	so.mu.Lock()
	so.session = session
	so.mu.Unlock()
	h.ExpireAt(so, expires)
}

// ForeignToken closes a session given an in-band token of another user.
func (h *Hub) ForeignToken(so *Session) { h.closeNow(so, foreignTokenClose) }

// loginSession is the login session the session belongs to now.
func (so *Session) loginSession() uuid.UUID {
	so.mu.Lock()
	defer so.mu.Unlock()
	return so.session
}
