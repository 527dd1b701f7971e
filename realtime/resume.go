package realtime

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// resume sends what a session missed after since, then its buffered live
// frames, with no gap and no duplicate at the seam: the session was
// registered (buffering) before the watermark was read, and everything up
// to that watermark comes from the log here. The session keeps buffering
// until its buffer is empty, so no live frame overtakes a buffered one.
func (h *Hub) resume(ctx context.Context, so *Session, since eventstore.Position) {
	defer func() { // on every return: a session that ended mid-resume stops buffering
		so.mu.Lock()
		so.buffered = nil
		if so.state == CatchingUp {
			so.state = Closing
		}
		// Nothing reads with the session's context after its resume: let
		// it go (with what the reads left in it), not keep it for the
		// socket's life.
		cancel := so.cancel
		so.cancel = nil
		so.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		if h.resumeEnded != nil {
			h.resumeEnded(so)
		}
	}()
	upTo := h.cfg.Watermark.Position()
	so.mu.Lock()
	so.last = since
	so.mu.Unlock()
	var absence absence
	events, err := h.roomEvents(ctx, so.room, since, upTo, h.cfg.ResumeMax)
	switch {
	case errors.Is(err, errResumeTooOld):
		// The client reloads over REST: catching up this far over the
		// socket would cost the server more than the page reads do.
		h.writePaced(so, resumeTooOldFrame)
		h.closeNow(so, resumeTooOldClose)
		return
	case ctx.Err() != nil:
		return // the socket went: nothing more to read or write
	case err != nil:
		h.log.Error("websocket resume", "room", so.room, "err", err)
		h.writePaced(so, ErrorFrame("Could not resume; reload the conversation."))
		h.closeNow(so, unavailableClose)
		return
	}
	for _, e := range events {
		f, room, ok := h.cfg.Render(e, so.base)
		if !ok || room != so.room {
			continue
		}
		so.mu.Lock()
		so.last = e.Position
		so.mu.Unlock()
		leaver, joiner := membershipChange(e)
		if !absence.pass(positioned{leaver: leaver, joiner: joiner}, so.user) {
			continue
		}
		if !h.writePaced(so, f) {
			return
		}
		h.delivered(so, messageSent(e))
	}
	for {
		so.mu.Lock()
		buffered := so.buffered
		so.buffered = nil
		if len(buffered) == 0 {
			if so.state != CatchingUp {
				so.mu.Unlock()
				return
			}
			if absence.left {
				so.mu.Unlock()
				h.closeNow(so, leftClose) // left in what it caught up on, and not back
				return
			}
			// Under the lock: the next live frame goes straight out.
			closing := so.closeWith
			so.state = Live
			if closing != nil {
				so.state = Closing
			}
			so.mu.Unlock()
			if closing != nil {
				_ = so.conn.Close(closing.code, closing.reason)
			}
			return
		}
		so.mu.Unlock()
		for _, p := range buffered {
			so.mu.Lock()
			fresh := so.last.Less(p.pos)
			if fresh {
				so.last = p.pos
			}
			if fresh && p.joiner == so.user && so.closeWith == leftClose {
				// Back in the room: a leave heard live while catching up
				// no longer closes the session (absence decides that).
				so.closeWith = nil
			}
			so.mu.Unlock()
			if fresh && absence.pass(p, so.user) {
				if !h.writePaced(so, p.frame) {
					return
				}
				h.delivered(so, p.msg)
			}
		}
	}
}

// absence follows, while a session catches up, whether its user is out of
// the room: after their member_left and until their member_joined (they
// left and came back while the session was away), the room's frames are
// not theirs to hear. A session whose user is still out when it has caught
// up closes as a leave.
type absence struct{ left bool }

// pass tells whether a frame goes to the session of user, and notes the
// user leaving or joining.
func (a *absence) pass(p positioned, user int64) bool {
	switch {
	case p.joiner == user:
		a.left = false
		return true
	case a.left:
		return false
	case p.leaver == user:
		a.left = true // their own member_left still goes out
	}
	return true
}

// membershipChange returns who an event makes leave or join its room.
func membershipChange(e eventstore.RecordedEvent) (leaver, joiner int64) {
	switch e.Type {
	case domain.TypeMemberLeft:
		var left domain.MemberLeft
		if json.Unmarshal(e.Data, &left) == nil {
			leaver = left.UserID
		}
	case domain.TypeMemberJoined:
		var joined domain.MemberJoined
		if json.Unmarshal(e.Data, &joined) == nil {
			joiner = joined.UserID
		}
	}
	return leaver, joiner
}

// ErrorFrame is the frame that tells the client of a failure.
func ErrorFrame(detail string) []byte {
	b, _ := json.Marshal(map[string]string{"type": "error", "detail": detail})
	return b
}
