package chatd_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
)

// projectorHold holds the projector's batches before they commit while a
// release channel is set; closing it lets them go.
type projectorHold struct{ release atomic.Pointer[chan struct{}] }

func (h *projectorHold) hook(ctx context.Context) error {
	if ch := h.release.Load(); ch != nil {
		select {
		case <-*ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// hold starts holding; the returned function lets go (once).
func (h *projectorHold) hold() (letGo func()) {
	ch := make(chan struct{})
	h.release.Store(&ch)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			h.release.Store(nil)
			close(ch)
		}
	}
}

// readWaiters tells which users' reads are waiting for the projection.
type readWaiters chan int64

func (w readWaiters) hook(user int64) {
	select {
	case w <- user:
	default:
	}
}

// TestReadYourWritesAfterEarlyAnswer: a send answers before the read model
// shows it, and the sender's next read still shows it, whichever process
// the read reaches: the same one (ReadWaitHead, ReadWaitUser), another one
// (ReadWaitHead, or ReadWaitUser with the X-Chat-Position the send answered
// echoed). The projector is held before it commits the send's batch, and
// let go only once the read waits for it: a read that does not wait answers
// while the projector is held, without the message, and fails the test.
// A send that waited for the projection would never answer here (the wait
// is longer than the test's timeout).
func TestReadYourWritesAfterEarlyAnswer(t *testing.T) {
	t.Parallel()
	var hold projectorHold
	waitA, waitB := make(readWaiters, 16), make(readWaiters, 16)
	cfgA := chatd.Config{
		Addr:        "127.0.0.1:0",
		DatabaseURL: pgtest.NewDatabase(t),
		DataDir:     t.TempDir(),
		JWTKeyFile:  filepath.Join(t.TempDir(), "jwt-ed25519.pem"), // shared: tokens verify on both
		BcryptCost:  4,
		LeaderRetry: 100 * time.Millisecond,
		// Longer than any test: a read that gives up waiting would pass
		// only by chance; sends must not wait at all.
		ProjectionWait: time.Hour,
		ReadWaiting:    waitA.hook,
	}
	useEventStore(t, &cfgA)
	cfgA.Hooks.ProjectorBeforeCommit = hold.hook
	a := startWith(t, cfgA) // A projects: it started first
	cfgB := cfgA
	cfgB.DataDir = t.TempDir()
	cfgB.ReadWait = chathttp.ReadWaitUser
	cfgB.ReadWaiting = waitB.hook
	cfgB.Hooks.ProjectorBeforeCommit = nil
	b := startWith(t, cfgB)

	alice, bob := a.newUser(), a.newUser()
	room := a.room(alice, bob)

	for _, tc := range []struct {
		name         string
		sendOn, read *testServer
		waits        readWaiters
		echo         bool
	}{
		{"same process, head", a, a, waitA, false},
		{"same process, user", b, b, waitB, false},
		{"other process, head", b, a, waitA, false},
		{"other process, user with the echoed position", a, b, waitB, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			letGo := hold.hold()
			defer letGo()
			r := tc.sendOn.callJSON(t, "POST", "/send-message/", alice.Access, map[string]any{"conversation_id": room, "text": tc.name})
			wantStatus(t, r, http.StatusCreated)
			var sent messageJSON
			r.JSON(t, &sent)
			if got := r.Header.Get(chathttp.PositionHeader); got != sent.Position {
				t.Fatalf("send answered %s %q; want the message's position %q", chathttp.PositionHeader, got, sent.Position)
			}
			var headers []string
			if tc.echo {
				headers = []string{chathttp.PositionHeader, sent.Position}
			}
			done := make(chan response, 1)
			go func() {
				r, err := tc.read.tryJSON("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), alice.Access, nil, headers...)
				if err != nil {
					t.Error(err)
				}
				done <- r
			}()
			select {
			case u := <-tc.waits:
				if u != alice.ID {
					t.Fatalf("user %d's read waited; want alice's (%d)", u, alice.ID)
				}
				letGo()
				r = <-done
			case r = <-done: // answered while the projector was held
			}
			wantStatus(t, r, http.StatusOK)
			var msgs []messageJSON
			r.JSON(t, &msgs)
			if len(msgs) == 0 || msgs[len(msgs)-1].ID != sent.ID {
				t.Fatalf("list after the send = %s; want it to end with message %d", r.Body, sent.ID)
			}
		})
	}
}
