package http

import (
	"context"
	"fmt"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/eventstore"
)

// Read-your-writes, moved from the write to the read.
//
// A send answers once its event is durable in the log: the answer is built
// from the command's own result, not from the read model, so it does not
// wait for the projector (about half of a send's time when it did). The
// promise of the contract still holds: a client's next read shows its
// write. A read that must show earlier writes waits first, bounded by
// ProjectionWait, until the read model has projected up to a position at
// or after them. Which position, in order:
//
//  1. The X-Chat-Position request header, when the client echoes the one
//     its last write answered with (every send and read receipt answers
//     with it; it is the position string of messages and frames). It is
//     exact across any number of processes and costs nothing to look up.
//     Joined with 2: the later of the two.
//  2. ReadWaitUser: the caller's last write through this process (kept in
//     memory per user, dropped once projected). Exact only when every
//     request of a user reaches this process: one process, or a balancer
//     that pins each user to one.
//  3. ReadWaitHead (the default): the head of the log as the read starts.
//     The write answered after its event was durable, so the head is at or
//     after it whichever process took it: safe with any number of
//     processes and any client. It costs a look-up of the head, one for
//     all the reads that arrive while another is in flight (heads), and
//     under write load the read also waits for everyone else's writes
//     that reached the log first (about one projector batch). While the log
//     cannot be read, nothing can be written or projected either: the read
//     waits for 2 only and answers from the read model as it is.
//
// Every authenticated request waits but a send: reads (lists, media,
// audit, search), read receipts (they check message ids against the read
// model), and the writes that decide on projected state (a message's
// edit, delete and reactions look the message up; adding a member looks
// the user up). Writes other
// than sends and receipts (rooms, joins, invites, a message's life) still
// answer after their own projection as well.
//
// WebSocket order is untouched: the fan-out still delivers an event only
// after the read model shows it, in log order.

// ReadWait names how a read finds the position it must wait for when the
// client does not echo X-Chat-Position.
type ReadWait string

const (
	// ReadWaitHead waits for the log head as of the read's start.
	ReadWaitHead ReadWait = "head"
	// ReadWaitUser waits for the caller's last write through this process.
	ReadWaitUser ReadWait = "user"
)

// ParseReadWait reads a ReadWait setting.
func ParseReadWait(s string) (ReadWait, error) {
	switch ReadWait(s) {
	case ReadWaitHead, ReadWaitUser:
		return ReadWait(s), nil
	}
	return "", fmt.Errorf("read wait %q: want %q or %q", s, ReadWaitHead, ReadWaitUser)
}

// PositionHeader carries a write's log position to the client, and back
// on its next read.
const PositionHeader = "X-Chat-Position"

// WriteMarks are the positions of each user's last write through this
// process that the read model may not show yet. The zero value is ready;
// a nil *WriteMarks keeps nothing.
type WriteMarks struct {
	mu    sync.Mutex
	marks map[int64]eventstore.Position
	notes int
}

// sweepEvery is how many notes pass between sweeps of projected marks.
const sweepEvery = 1024

// Note records that user wrote at p; projected is the watermark now.
func (m *WriteMarks) Note(user int64, p, projected eventstore.Position) {
	if m == nil || p.IsZero() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.marks == nil {
		m.marks = map[int64]eventstore.Position{}
	}
	if old, ok := m.marks[user]; !ok || old.Less(p) {
		m.marks[user] = p
	}
	if m.notes++; m.notes%sweepEvery == 0 {
		for u, q := range m.marks {
			if !projected.Less(q) {
				delete(m.marks, u)
			}
		}
	}
}

// Pending returns user's last write that the read model at projected may
// not show, or the zero position.
func (m *WriteMarks) Pending(user int64, projected eventstore.Position) eventstore.Position {
	if m == nil {
		return eventstore.Position{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.marks[user]
	if !ok {
		return eventstore.Position{}
	}
	if !projected.Less(p) {
		delete(m.marks, user)
		return eventstore.Position{}
	}
	return p
}

// Len is the number of marks kept (tests, metrics).
func (m *WriteMarks) Len() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.marks)
}

// written answers for a write that does not wait for the projection: it
// tells the client its position and remembers it for the user's next read.
func (s *Server) written(c echo.Context, user int64, p eventstore.Position) {
	if p.IsZero() {
		return
	}
	c.Response().Header().Set(PositionHeader, p.String())
	if s.wm != nil {
		s.cfg.WriteMarks.Note(user, p, s.wm.Position())
	}
}

// readPosition is the position a read of user must see projected: see the
// comment at the top of this file. Zero: nothing to wait for.
func (s *Server) readPosition(ctx context.Context, c echo.Context, user int64) (eventstore.Position, error) {
	projected := s.wm.Position()
	p := s.cfg.WriteMarks.Pending(user, projected)
	if v := c.Request().Header.Get(PositionHeader); v != "" {
		if q, err := eventstore.ParsePosition(v); err == nil {
			if p.Less(q) {
				p = q
			}
			return p, nil
		}
		// A malformed echo is no echo: fall through to the safe choice.
	}
	if s.cfg.ReadWait == ReadWaitUser {
		return p, nil
	}
	head, err := s.heads.Head(ctx)
	if err != nil {
		// The log cannot be read: no write can be appended either, and
		// the projector cannot move. The caller's writes through this
		// process are still waited for; the read model answers as it is.
		s.log.Debug("read-your-writes: log head unknown; waiting for this process's writes only", "err", err)
		return p, nil
	}
	if p.Less(head) {
		p = head
	}
	if !projected.Less(p) {
		return eventstore.Position{}, nil
	}
	return p, nil
}

// readsOwnWrites makes a read wait, bounded, until the read model shows
// the caller's earlier writes. A wait that runs out answers anyway (the
// read may then miss a write; it is logged), unless the database or the
// event store is unreachable: then 503, as for writes.
func (s *Server) readsOwnWrites(c echo.Context, user int64) error {
	if s.wm == nil || s.store == nil {
		return nil // no projection to wait for (contract tests over fakes)
	}
	p, err := s.readPosition(c.Request().Context(), c, user)
	if err != nil {
		return err
	}
	if s.cfg.ReadWaiting != nil && s.wm.Position().Less(p) {
		s.cfg.ReadWaiting(user)
	}
	return s.waitProjected(c, p)
}

// readsModel reports whether an authenticated request reads the read model
// and so waits for its caller's writes first: every request but a send,
// the one write on the hot path (its reply_to check brings the message's
// projected state up to the room stream's head itself).
func readsModel(c echo.Context) bool {
	r := c.Request()
	return !(r.Method == "POST" && c.Path() == "/send-message/")
}

// MarshalText implements encoding.TextMarshaler (flags); zero is head.
func (w ReadWait) MarshalText() ([]byte, error) {
	if w == "" {
		w = ReadWaitHead
	}
	return []byte(w), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (flags).
func (w *ReadWait) UnmarshalText(b []byte) error {
	v, err := ParseReadWait(string(b))
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// noteWritten remembers a write of user's over a WebSocket for the user's
// next REST read.
func (s *Server) noteWritten(user int64, p eventstore.Position) {
	if s.wm != nil {
		s.cfg.WriteMarks.Note(user, p, s.wm.Position())
	}
}
