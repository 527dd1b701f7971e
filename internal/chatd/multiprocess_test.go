package chatd_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
)

// TestMultiProcess runs two servers on one database, as behind a load
// balancer: a socket on one hears what is sent and typed on the other, and
// when the projecting process stops, the other takes over and keeps serving.
func TestMultiProcess(t *testing.T) {
	t.Parallel()
	cfgA := chatd.Config{
		Addr:        "127.0.0.1:0",
		DatabaseURL: pgtest.NewDatabase(t),
		DataDir:     t.TempDir(),
		JWTKeyFile:  filepath.Join(t.TempDir(), "jwt-ed25519.pem"), // shared: tokens verify on both
		BcryptCost:  4,
		LeaderRetry: 100 * time.Millisecond,
	}
	a := startWith(t, cfgA)
	// A projected these writes (read-your-writes) before B existed: A holds
	// the projector lock.
	alice, bob := a.newUser(), a.newUser()
	room := a.room(alice, bob)

	cfgB := cfgA
	cfgB.DataDir = t.TempDir()
	b := startWith(t, cfgB)

	onA := a.wsConnect(alice, room, "")
	onB := b.wsConnect(bob, room, "") // a token issued by A

	t.Run("message sent to A reaches B", func(t *testing.T) {
		a := a.wsFor(t)
		id := a.send(alice, room, "from A")
		for name, so := range map[string]*wsConn{"A": onA, "B": onB} {
			if f := so.expectMessage(t, id); f.Sender != alice.ID || f.Text != "from A" {
				t.Fatalf("socket on %s: got %s; want alice's message", name, f.Raw)
			}
		}
	})
	t.Run("typing on A reaches B", func(t *testing.T) {
		onA.write(t, map[string]any{"type": "typing"})
		f := onB.expect(t, "typing")
		if f.Sender != alice.ID || f.Conversation != room || f.IsTyping == nil || !*f.IsTyping {
			t.Fatalf("typing frame on B = %s; want alice typing in room %d", f.Raw, room)
		}
	})
	t.Run("message sent over WS on B reaches A", func(t *testing.T) {
		onB.write(t, map[string]any{"type": "message", "text": "from B"})
		f := onB.expect(t, "message")
		if got := onA.expect(t, "message"); got.ID != f.ID || got.Sender != bob.ID {
			t.Fatalf("socket on A got %s; want bob's message %d", got.Raw, f.ID)
		}
	})

	// Stop A: its sockets go away, and B takes over projecting.
	a.stop()
	onA.expectClose(t, websocket.CloseGoingAway)

	t.Run("B serves alone", func(t *testing.T) {
		b := b.wsFor(t)
		id := b.send(bob, room, "after A stopped")
		if f := onB.expectMessage(t, id); f.Sender != bob.ID {
			t.Fatalf("socket on B got %s; want bob's message", f.Raw)
		}
		// The send waited (bounded) for the projection: B's lists show it
		// only if B projects now.
		r := b.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), alice.Access, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list on B: %d %s", r.Status, r.Body)
		}
		var msgs []struct{ ID int64 }
		r.JSON(t, &msgs)
		if len(msgs) == 0 || msgs[len(msgs)-1].ID != id {
			t.Fatalf("list on B = %s; want it to end with message %d", r.Body, id)
		}
		// New users and rooms work on B alone, sockets included.
		carol := b.newUser()
		room2 := b.room(carol, bob)
		so := b.wsConnect(carol, room2, "")
		id = b.send(bob, room2, "new room on B")
		so.expectMessage(t, id)
	})
}

// TestIdempotencyKeyAcrossProcesses: requests with one Idempotency-Key that
// race on two processes (a client retrying through a load balancer) store
// one message, on either event store.
func TestIdempotencyKeyAcrossProcesses(t *testing.T) {
	t.Parallel()
	cfgA := chatd.Config{
		Addr:        "127.0.0.1:0",
		DatabaseURL: pgtest.NewDatabase(t),
		DataDir:     t.TempDir(),
		JWTKeyFile:  filepath.Join(t.TempDir(), "jwt-ed25519.pem"),
		BcryptCost:  4,
		LeaderRetry: 100 * time.Millisecond,
	}
	useEventStore(t, &cfgA)
	a := startWith(t, cfgA)
	cfgB := cfgA
	cfgB.DataDir = t.TempDir()
	b := startWith(t, cfgB)
	alice, bob := a.newUser(), a.newUser()
	room := a.room(alice, bob)

	for round := range 10 {
		key := fmt.Sprintf("retry-%d", round)
		ids := make([]int64, 6)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				s := []*testServer{a, b}[i%2]
				id, err := s.trySend(alice, room, key, "Idempotency-Key", key)
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("round %d: one key answered messages %v", round, ids)
			}
		}
	}
	var msgs []messageJSON
	b.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/?limit=100", room), alice.Access, nil).JSON(t, &msgs)
	if len(msgs) != 10 {
		t.Fatalf("room holds %d messages; want 10, one per key", len(msgs))
	}
}
