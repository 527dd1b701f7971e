package realtime

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/eventstore"
)

// State is where a session is in its life.
//
//	CatchingUp --caught up--> Live --close--> Closing
//	CatchingUp --dropped, ended, left, not a member--> Closing
//
// While catching up, live frames wait in the session's buffer; once live
// they go straight out; once closing nothing more is written.
type State int

const (
	CatchingUp State = iota
	Live
	Closing
)

func (s State) String() string {
	switch s {
	case CatchingUp:
		return "catching up"
	case Live:
		return "live"
	}
	return "closing"
}

// closeMsg is a close frame to send.
type closeMsg struct {
	code   int
	reason string
}

// Close frames of sessions that end on the server's decision.
var (
	// leftClose: the user left the room.
	leftClose = &closeMsg{CloseNormal, "left the conversation"}
	// notMemberClose: the user was no member when the socket started.
	notMemberClose = &closeMsg{ClosePolicyViolation, "not a member"}
	// unavailableClose: membership could not be checked; try again later.
	unavailableClose = &closeMsg{CloseTryAgainLater, "Service temporarily unavailable."}
	tooSlowClose     = &closeMsg{ClosePolicyViolation, "too slow"}
	loggedOutClose   = &closeMsg{ClosePolicyViolation, "logged out"}
	// tooManyForUserClose refuses a user's connection past Config.PerUser.
	tooManyForUserClose = &closeMsg{ClosePolicyViolation, "too many sockets"}
	// tooManyClose refuses a connection past Config.Max.
	tooManyClose = &closeMsg{CloseTryAgainLater, "too many sockets on this server"}
	// resumeTooOldClose follows the resume_too_old error frame.
	resumeTooOldClose = &closeMsg{CloseResumeTooOld, "resume too old"}
)

// Session is one connection of one user in one room.
type Session struct {
	conn    Conn
	user    int64
	session uuid.UUID
	room    int64
	base    string // scheme://host for attachment URLs

	mu    sync.Mutex
	state State
	// buffered holds live frames while catching up.
	buffered []positioned
	last     eventstore.Position // last frame from the log sent
	// closeWith, set while catching up, closes the session once caught up.
	closeWith *closeMsg
	pending   int           // frames queued, not yet written
	drained   chan struct{} // signalled when a queued frame is written or the session ends

	// cancel ends the session's context: its resume stops reading.
	cancel context.CancelFunc
	// stopExpiry cancels the close at its token's expiry (ExpireAt).
	stopExpiry func() bool
	// removed: the session has left the hub; nothing more starts for it.
	removed bool
	// present: the session counts for its user's presence.
	present bool

	tokens float64 // inbound rate limit
	refill time.Time
}

// positioned is a frame from the log.
type positioned struct {
	pos   eventstore.Position
	frame []byte
	// leaver is the user a member_left frame is about (0 otherwise): that
	// user's session hears nothing of the room after it, unless (while
	// catching up) the user's member_joined comes later: see resume.
	leaver int64
	// joiner is the user a member_joined frame is about (0 otherwise).
	joiner int64
	// msg is the message of a message frame (nil otherwise): its
	// receivers' sessions record its delivery.
	msg *sentInfo
}

// NewSession returns a session, catching up, not yet registered.
func NewSession(conn Conn, user int64, session uuid.UUID, room int64, base string) *Session {
	return &Session{conn: conn, user: user, session: session, room: room, base: base,
		state: CatchingUp, drained: make(chan struct{}, 1), tokens: 2 * framesPerSecond, refill: time.Now()}
}

// User is the session's user; Room its room.
func (so *Session) User() int64 { return so.user }
func (so *Session) Room() int64 { return so.room }

// State is the session's state now.
func (so *Session) State() State {
	so.mu.Lock()
	defer so.mu.Unlock()
	return so.state
}

// Sent tells the session its connection has written one queued frame.
func (so *Session) Sent() {
	so.mu.Lock()
	so.pending--
	so.mu.Unlock()
	so.signalDrained()
}

// stop marks the session removed, cancels its context, once it has one,
// and its close at token expiry.
func (so *Session) stop() {
	so.mu.Lock()
	so.removed = true
	cancel, stopExpiry := so.cancel, so.stopExpiry
	so.stopExpiry = nil
	so.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if stopExpiry != nil {
		stopExpiry()
	}
}

func (so *Session) signalDrained() {
	select {
	case so.drained <- struct{}{}:
	default:
	}
}

// Allow takes one token of the session's inbound rate limit.
func (so *Session) Allow() bool {
	so.mu.Lock()
	defer so.mu.Unlock()
	now := time.Now()
	so.tokens = min(2*framesPerSecond, so.tokens+now.Sub(so.refill).Seconds()*framesPerSecond)
	so.refill = now
	if so.tokens < 1 {
		return false
	}
	so.tokens--
	return true
}

// Start registers a session for its room's live frames, runs registered
// (a test hook; may be nil), asks member whether the user is a member
// still, and catches up from since in the background. A session whose
// user is no member closes at once: it hears nothing of the room.
func (h *Hub) Start(ctx context.Context, so *Session, since eventstore.Position, registered func(),
	member func(context.Context) (bool, error)) {
	ctx, cancel := context.WithCancel(ctx)
	so.mu.Lock()
	so.cancel = cancel
	so.mu.Unlock()
	if refused := h.add(so); refused != nil {
		h.log.Info("websocket refused", "user", so.user, "reason", refused.reason)
		h.closeNow(so, refused)
		return
	}
	if registered != nil {
		registered()
	}
	// The user may have left between the handshake's check and now; their
	// member_left frame may then have gone to no session of theirs.
	ok, err := member(ctx)
	switch {
	case err != nil:
		h.log.Warn("websocket membership check", "err", err)
		h.closeNow(so, unavailableClose)
		return
	case !ok:
		h.closeNow(so, notMemberClose)
		return
	}
	if so.joinPresence() {
		h.presence.up(so.user)
	}
	go h.resume(ctx, so, since)
}

// Write queues a frame to the session outside the log's order (a reply to
// the client's own frame); a session whose backlog is full is dropped.
func (h *Hub) Write(so *Session, frame []byte) { h.write(so, frame) }

// Overflowed drops a session whose connection refused a frame because its
// queue was full.
func (h *Hub) Overflowed(so *Session) { h.drop(so) }

// write queues a frame; a session whose backlog is full is dropped.
func (h *Hub) write(so *Session, frame []byte) {
	so.mu.Lock()
	if so.state == Closing {
		so.mu.Unlock()
		return
	}
	if so.pending >= socketBacklog {
		so.mu.Unlock()
		h.drop(so)
		return
	}
	so.pending++
	so.mu.Unlock()
	_ = so.conn.Write(frame) // a full queue comes back through Overflowed
}

// writeDroppable queues a frame that may be dropped (a typing notice): a
// session whose backlog is half full does not get it, and is not dropped
// for it, so that another user's typing never makes a session too slow.
func (h *Hub) writeDroppable(so *Session, frame []byte) {
	so.mu.Lock()
	if so.state == Closing || so.pending >= socketBacklog/2 {
		so.mu.Unlock()
		return
	}
	so.pending++
	so.mu.Unlock()
	_ = so.conn.Write(frame)
}

// writePaced queues a frame of a resume. The resume alone feeds the session
// then and stalls no one, so it waits for the backlog to drain instead of
// dropping a session that reads more slowly than the log can be read; a
// session that takes no frame for the write deadline is dropped. It reports
// whether the session is still open.
func (h *Hub) writePaced(so *Session, frame []byte) bool {
	for {
		so.mu.Lock()
		pending, closing := so.pending, so.state == Closing
		so.mu.Unlock()
		if closing || so.conn.IsClosed() {
			return false
		}
		if pending < socketBacklog/2 {
			h.write(so, frame)
			return true
		}
		t := time.NewTimer(h.cfg.WriteWait)
		select {
		case <-so.drained:
			t.Stop()
		case <-t.C:
			h.drop(so)
			return false
		}
	}
}

// drop closes a session that cannot keep up, without waiting for it.
func (h *Hub) drop(so *Session) {
	so.mu.Lock()
	already := so.state == Closing
	so.state, so.buffered = Closing, nil
	so.mu.Unlock()
	if already {
		return
	}
	h.log.Info("dropping slow websocket", "user", so.user, "room", so.room)
	if h.cfg.OnDrop != nil {
		h.cfg.OnDrop()
	}
	h.Remove(so)
	_ = so.conn.Close(tooSlowClose.code, tooSlowClose.reason)
}

// deliver sends a log frame to a session once, in position order; while
// the session catches up, live frames wait in its buffer.
func (h *Hub) deliver(so *Session, p positioned) {
	so.mu.Lock()
	switch so.state {
	case Closing:
		so.mu.Unlock()
		return
	case CatchingUp:
		if len(so.buffered) >= resumeBuffer { // its resume cannot keep up with the room
			so.mu.Unlock()
			h.drop(so)
			return
		}
		so.buffered = append(so.buffered, p)
		so.mu.Unlock()
		return
	}
	if !so.last.Less(p.pos) {
		so.mu.Unlock()
		return
	}
	so.last = p.pos
	so.mu.Unlock()
	h.write(so, p.frame)
	h.delivered(so, p.msg)
}

// closeNow ends a session before it has heard anything more of its room:
// it stops buffering, leaves the room and closes with msg.
func (h *Hub) closeNow(so *Session, msg *closeMsg) {
	so.mu.Lock()
	so.buffered, so.state = nil, Closing
	so.mu.Unlock()
	h.Remove(so)
	_ = so.conn.Close(msg.code, msg.reason)
}

// closeAfterFrames closes a session after the frames it has been given: at
// once when it is live (the close queues behind them), or when it has
// caught up, if it is still catching up (its frames wait in its buffer).
func (h *Hub) closeAfterFrames(so *Session, msg *closeMsg) {
	so.mu.Lock()
	switch so.state {
	case CatchingUp:
		so.closeWith = msg
		so.mu.Unlock()
		return
	case Closing:
		so.mu.Unlock()
		return
	}
	so.state = Closing
	so.mu.Unlock()
	_ = so.conn.Close(msg.code, msg.reason)
}

// joinPresence marks the session as counting for its user's presence,
// unless it has been removed already; it reports whether it did.
func (so *Session) joinPresence() bool {
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.removed {
		return false
	}
	so.present = true
	return true
}

// leavePresence unmarks the session; it reports whether it counted.
func (so *Session) leavePresence() bool {
	so.mu.Lock()
	defer so.mu.Unlock()
	was := so.present
	so.present = false
	return was
}
