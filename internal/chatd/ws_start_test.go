package chatd_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/internal/chatd"
)

// handshakeRace is a room where b opens a socket while, at chosen steps of
// the socket's start, b leaves and a sends a message after the leave.
type handshakeRace struct {
	s    *testServer
	a, b user
	room int64
	// leaveAt and sendAt are the steps of b's socket start at which b
	// leaves and a then sends; both act once, when armed.
	leaveAt, sendAt chathttp.SocketPoint
	armed           atomic.Bool
	left, sent      atomic.Bool
	afterLeave      atomic.Int64 // the id of a's message sent after the leave
}

func startHandshakeRace(t *testing.T, leaveAt, sendAt chathttp.SocketPoint) *handshakeRace {
	t.Helper()
	hr := &handshakeRace{leaveAt: leaveAt, sendAt: sendAt}
	hr.s = startServer(t, func(c *chatd.Config) {
		c.Hooks.SocketHook = func(p chathttp.SocketPoint, user, room int64) {
			if hr.armed.Load() && user == hr.b.ID && room == hr.room {
				hr.step(t, p)
			}
		}
	})
	hr.a, hr.b = hr.s.newUser(), hr.s.newUser()
	hr.room = hr.s.room(hr.a, hr.b)
	return hr
}

// step acts at one step of b's socket start. Each request answers once the
// read model shows its change (read-your-writes), so the leave, and then the
// message, are projected before the socket's start goes on.
func (hr *handshakeRace) step(t *testing.T, p chathttp.SocketPoint) {
	if p == hr.leaveAt && hr.left.CompareAndSwap(false, true) {
		r, err := hr.s.tryJSON("DELETE", fmt.Sprintf("/leave-chatroom/%d/", hr.room), hr.b.Access, nil)
		if err != nil || r.Status != http.StatusOK {
			t.Errorf("b leaves at %q: %v %d %s", p, err, r.Status, r.Body)
		}
	}
	if p == hr.sendAt && hr.left.Load() && hr.sent.CompareAndSwap(false, true) {
		id, err := hr.s.trySend(hr.a, hr.room, "said after b left")
		if err != nil {
			t.Errorf("a sends at %q: %v", p, err)
		}
		hr.afterLeave.Store(id)
	}
}

// heard reads a socket until it closes and returns its frames and its close
// code.
func heard(t *testing.T, conn *websocket.Conn) ([]wsFrame, int) {
	t.Helper()
	var frames []wsFrame
	for {
		_ = conn.SetReadDeadline(time.Now().Add(wsWait))
		_, b, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("socket did not close: %v (frames %d)", err, len(frames))
			}
			return frames, ce.Code
		}
		var f wsFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		f.Raw = b
		frames = append(frames, f)
	}
}

// TestWSLeaveBeforeMembershipCheck: b's leave is projected between the two
// steps of the handshake (reading the position the socket starts from, and
// checking membership), and a speaks once b's socket is registered. b is no
// member when checked, so the socket is refused; in no order may it hear
// what was said after the leave.
func TestWSLeaveBeforeMembershipCheck(t *testing.T) {
	t.Parallel()
	hr := startHandshakeRace(t, chathttp.SocketChecking, chathttp.SocketRegistered)
	hr.armed.Store(true)
	conn, status, err := hr.s.wsDial(nil, hr.room, "", http.Header{"Authorization": {"Bearer " + hr.b.Access}})
	if !hr.left.Load() {
		t.Fatal("the hook never ran: b did not leave during the handshake")
	}
	if err == nil {
		defer conn.Close()
		frames, code := heard(t, conn)
		for _, f := range frames {
			if f.Type == "message" {
				t.Errorf("b's socket heard %s, said after b left", f.Raw)
			}
		}
		t.Fatalf("b's socket opened (%d frames, closed %d); want the upgrade refused with 403", len(frames), code)
	}
	if status != http.StatusForbidden {
		t.Fatalf("upgrade: status %d (%v); want 403", status, err)
	}
}

// TestWSLeaveAfterMembershipCheck: b leaves after the handshake's check, once
// the socket is registered for live frames, and a speaks at once. The
// socket's second check finds b gone: it closes without a word of the room
// after the leave.
func TestWSLeaveAfterMembershipCheck(t *testing.T) {
	t.Parallel()
	hr := startHandshakeRace(t, chathttp.SocketRegistered, chathttp.SocketRegistered)
	hr.armed.Store(true)
	conn, status, err := hr.s.wsDial(nil, hr.room, "", http.Header{"Authorization": {"Bearer " + hr.b.Access}})
	if err != nil {
		t.Fatalf("upgrade: %v (status %d); want it to open (b is a member when checked)", err, status)
	}
	defer conn.Close()
	frames, code := heard(t, conn)
	if !hr.sent.Load() {
		t.Fatal("the hook never ran: a did not speak after b left")
	}
	for _, f := range frames {
		if f.Type == "message" {
			t.Errorf("b's socket heard %s, said after b left", f.Raw)
		}
	}
	if code != websocket.ClosePolicyViolation && code != websocket.CloseNormalClosure {
		t.Fatalf("closed with %d; want 1008 (not a member) or 1000 (left)", code)
	}
}
