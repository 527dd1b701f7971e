package realtime

import (
	"context"
	"testing"
	"time"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/clocktest"
)

// typingHub is a hub on a manual clock, listening to its bus.
func typingHub(t *testing.T) (*Hub, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h := newTestHub(&fakeLog{}, newWatermark(0), &fakeBus{})
	h.cfg.Clock = clock
	h.typingOut, h.typingIn = newTypingGate(clock, DefaultTypingInterval), newTypingGate(clock, DefaultTypingInterval)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = h.Run(ctx, eventstore.Start) }()
	<-h.Listening()
	return h, clock
}

const (
	typingOn  = `{"conversation":7,"is_typing":true,"sender":1,"type":"typing"}`
	typingOff = `{"conversation":7,"is_typing":false,"sender":1,"type":"typing"}`
)

// TestTypingLimitedPerUserAndRoom: 250 sockets of one member typing at
// once reach another member as one notice per interval, not one per
// socket; a "stopped" follows a "typing" once.
func TestTypingLimitedPerUserAndRoom(t *testing.T) {
	h, clock := typingHub(t)
	h.cfg.PerUser = 1000
	var typists []*Session
	for range 250 {
		so, _ := newTestSession(1, 7)
		live(t, h, so)
		typists = append(typists, so)
	}
	peer, cp := newTestSession(2, 7)
	live(t, h, peer)
	ctx := context.Background()
	typeAll := func(isTyping bool) {
		for _, so := range typists {
			if err := h.Typing(ctx, so, isTyping); err != nil {
				t.Fatal(err)
			}
		}
	}
	typeAll(true)
	if got := cp.next(t); got != typingOn {
		t.Fatalf("frame %q; want %q", got, typingOn)
	}
	peer.Sent()
	cp.none(t)

	clock.Advance(DefaultTypingInterval - time.Millisecond)
	typeAll(true)
	cp.none(t)

	typeAll(false)
	if got := cp.next(t); got != typingOff {
		t.Fatalf("frame %q; want %q", got, typingOff)
	}
	peer.Sent()
	typeAll(false) // nothing left to stop
	cp.none(t)

	clock.Advance(time.Millisecond)
	typeAll(true)
	if got := cp.next(t); got != typingOn {
		t.Fatalf("frame %q; want %q after the interval", got, typingOn)
	}
	cp.none(t)
	if peer.State() != Live {
		t.Fatalf("peer %v; want live", peer.State())
	}
}

// TestTypingNeverDropsASocket: a socket that reads nothing while other
// users type for a long time is never dropped as too slow for it: its
// typing notices are dropped instead; log frames still reach it.
func TestTypingNeverDropsASocket(t *testing.T) {
	h, clock := typingHub(t)
	peer, cp := newTestSession(2, 7)
	live(t, h, peer)
	ctx := context.Background()
	for i := range 10 * socketBacklog {
		typist, _ := newTestSession(int64(100+i%50), 7)
		if err := h.Typing(ctx, typist, true); err != nil {
			t.Fatal(err)
		}
		clock.Advance(DefaultTypingInterval / 10)
	}
	if peer.State() != Live || !h.Has(peer) || cp.IsClosed() {
		t.Fatalf("state %v, registered %v, closed %v; want live and open", peer.State(), h.Has(peer), cp.IsClosed())
	}
	if n := len(cp.frames); n != socketBacklog/2 {
		t.Fatalf("%d typing frames queued; want %d (the droppable half of the backlog)", n, socketBacklog/2)
	}
	h.broadcast(message(7, 1))
	for range socketBacklog / 2 {
		cp.next(t)
	}
	if got := cp.next(t); got != frame(7, 1, "chat.message_sent") {
		t.Fatalf("frame %q; want the message", got)
	}
}
