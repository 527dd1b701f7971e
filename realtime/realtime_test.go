package realtime

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// live starts a session at the watermark and returns it live: its resume
// has nothing to catch up on.
func live(t *testing.T, h *Hub, so *Session) {
	t.Helper()
	h.add(so)
	h.resume(context.Background(), so, h.cfg.Watermark.Position())
	if got := so.State(); got != Live {
		t.Fatalf("state %v after an empty catch-up, want live", got)
	}
}

func TestFanOutInLogOrderToTheRoomOnly(t *testing.T) {
	log, wm := &fakeLog{}, newWatermark(0)
	h := newTestHub(log, wm, nil)
	a, ca := newTestSession(1, 7)
	b, cb := newTestSession(2, 7)
	other, co := newTestSession(3, 8)
	for _, so := range []*Session{a, b, other} {
		live(t, h, so)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, eventstore.Start) }()

	// The fan-out waits for the read model: nothing goes out before the
	// watermark reaches the delivery.
	events := []eventstore.RecordedEvent{message(7, 1), message(7, 2), {Stream: "receipts-7-2", Position: pos(3), Type: domain.TypeMessagesRead}, message(7, 4)}
	log.live <- eventstore.Delivery{Events: events}
	ca.none(t)
	wm.Advance(pos(4))
	for _, c := range []*fakeConn{ca, cb} {
		for _, e := range events {
			if got, want := c.next(t), frame(7, e.Position.Commit, e.Type); got != want {
				t.Fatalf("frame %q, want %q", got, want)
			}
		}
	}
	co.none(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

func TestSlowSocketDroppedWhenItsBacklogIsFull(t *testing.T) {
	h := newTestHub(&fakeLog{}, newWatermark(0), nil)
	slow, cs := newTestSession(1, 7)
	fast, cf := newTestSession(2, 7)
	live(t, h, slow)
	live(t, h, fast)
	for i := uint64(1); i <= socketBacklog+1; i++ {
		h.broadcast(message(7, i))
		// fast writes each frame out; slow writes none.
		cf.next(t)
		fast.Sent()
	}
	if msg, n := cs.closeMsg(); msg != *tooSlowClose || n != 1 {
		t.Fatalf("slow socket closed with %v (%d closes), want %v once", msg, n, *tooSlowClose)
	}
	if h.Has(slow) || slow.State() != Closing {
		t.Fatalf("a dropped socket stays registered (%v) or not closing (%v)", h.Has(slow), slow.State())
	}
	if got := len(cs.frames); got != socketBacklog {
		t.Fatalf("slow socket got %d frames, want the backlog %d", got, socketBacklog)
	}
	// Dropped sockets hear nothing more and are not closed twice.
	h.broadcast(message(7, 1000))
	h.drop(slow)
	if _, n := cs.closeMsg(); n != 1 {
		t.Fatalf("dropped socket closed %d times", n)
	}
	if !h.Has(fast) || fast.State() != Live {
		t.Fatal("the fast socket was dropped")
	}
}

func TestCatchingUpSocketDroppedWhenItsBufferIsFull(t *testing.T) {
	h := newTestHub(&fakeLog{}, newWatermark(0), nil)
	so, c := newTestSession(1, 7)
	h.add(so) // registered, catching up, its resume not yet run
	for i := uint64(1); i <= resumeBuffer; i++ {
		h.broadcast(message(7, i))
	}
	if so.State() != CatchingUp || c.IsClosed() {
		t.Fatal("a full buffer already dropped the socket")
	}
	h.broadcast(message(7, resumeBuffer+1))
	if msg, _ := c.closeMsg(); msg != *tooSlowClose || so.State() != Closing || h.Has(so) {
		t.Fatalf("closed with %v, state %v: want dropped as too slow", msg, so.State())
	}
	c.none(t)
}

func TestSessionStates(t *testing.T) {
	member := func(ok bool, err error) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) { return ok, err }
	}
	t.Run("not a member closes at once, unregistered", func(t *testing.T) {
		h := newTestHub(&fakeLog{}, newWatermark(0), nil)
		so, c := newTestSession(1, 7)
		registered := false
		h.Start(context.Background(), so, eventstore.Start, func() { registered = true }, member(false, nil))
		msg, _ := c.closeMsg()
		if !registered || msg != *notMemberClose || so.State() != Closing || h.Has(so) {
			t.Fatalf("registered %v, close %v, state %v, has %v", registered, msg, so.State(), h.Has(so))
		}
	})
	t.Run("membership unknown closes with try again later", func(t *testing.T) {
		h := newTestHub(&fakeLog{}, newWatermark(0), nil)
		so, c := newTestSession(1, 7)
		h.Start(context.Background(), so, eventstore.Start, nil, member(false, errors.New("down")))
		if msg, _ := c.closeMsg(); msg != *unavailableClose || so.State() != Closing {
			t.Fatalf("close %v, state %v", msg, so.State())
		}
	})
	t.Run("catching up, live, then closing after its frames", func(t *testing.T) {
		h := newTestHub(&fakeLog{}, newWatermark(0), nil)
		so, c := newTestSession(1, 7)
		if so.State() != CatchingUp {
			t.Fatalf("new session %v", so.State())
		}
		live(t, h, so)
		h.broadcast(membership(domain.TypeMemberLeft, 7, 1, 1))
		if got := c.next(t); got != frame(7, 1, domain.TypeMemberLeft) {
			t.Fatalf("frame %q", got)
		}
		if msg, _ := c.closeMsg(); msg != *leftClose || so.State() != Closing {
			t.Fatalf("close %v, state %v", msg, so.State())
		}
		h.broadcast(message(7, 2))
		c.none(t)
	})
	t.Run("a leave heard while catching up closes once caught up", func(t *testing.T) {
		h := newTestHub(&fakeLog{}, newWatermark(0), nil)
		so, c := newTestSession(1, 7)
		h.add(so)
		h.broadcast(message(7, 1))
		h.broadcast(membership(domain.TypeMemberLeft, 7, 1, 2))
		if c.IsClosed() || so.State() != CatchingUp {
			t.Fatal("closed before its buffered frames went out")
		}
		h.resume(context.Background(), so, eventstore.Start)
		if a, b := c.next(t), c.next(t); a != frame(7, 1, domain.TypeMessageSent) || b != frame(7, 2, domain.TypeMemberLeft) {
			t.Fatalf("frames %q %q", a, b)
		}
		if msg, _ := c.closeMsg(); msg != *leftClose || so.State() != Closing {
			t.Fatalf("close %v, state %v", msg, so.State())
		}
	})
	t.Run("left and back while catching up stays open", func(t *testing.T) {
		h := newTestHub(&fakeLog{}, newWatermark(0), nil)
		so, c := newTestSession(1, 7)
		h.add(so)
		h.broadcast(membership(domain.TypeMemberLeft, 7, 1, 1))
		h.broadcast(message(7, 2)) // not theirs to hear
		h.broadcast(membership(domain.TypeMemberJoined, 7, 1, 3))
		h.resume(context.Background(), so, eventstore.Start)
		for _, want := range []string{frame(7, 1, domain.TypeMemberLeft), frame(7, 3, domain.TypeMemberJoined)} {
			if got := c.next(t); got != want {
				t.Fatalf("frame %q, want %q", got, want)
			}
		}
		if c.IsClosed() || so.State() != Live {
			t.Fatalf("state %v, closed %v: want live", so.State(), c.IsClosed())
		}
	})
	t.Run("a socket that ends while catching up stops", func(t *testing.T) {
		wm := newWatermark(1)
		h := newTestHub(&fakeLog{events: []eventstore.RecordedEvent{message(7, 1)}}, wm, nil)
		so, c := newTestSession(1, 7)
		h.add(so)
		_ = c.Close(CloseNormal, "client gone")
		h.resume(context.Background(), so, eventstore.Start)
		if so.State() != Closing {
			t.Fatalf("state %v", so.State())
		}
	})
}

// TestCatchUpThenLiveWithoutLossOrDuplicates: live frames that arrive
// while the log is read (some of them also read from the log) go out once
// each, in order, after the caught-up ones.
func TestCatchUpThenLiveWithoutLossOrDuplicates(t *testing.T) {
	var events []eventstore.RecordedEvent
	for i := uint64(1); i <= 12; i++ {
		events = append(events, message(7, i))
	}
	log := &fakeLog{events: events, reading: make(chan struct{}), gate: make(chan struct{})}
	wm := newWatermark(6)
	h := newTestHub(log, wm, nil)
	so, c := newTestSession(1, 7)
	h.add(so)
	resumed := make(chan struct{})
	go func() {
		h.resume(context.Background(), so, pos(2))
		close(resumed)
	}()
	<-log.reading // the resume read the watermark (6) and reads the log now
	for i := uint64(5); i <= 10; i++ {
		h.broadcast(events[i-1]) // 5 and 6 also come from the log
	}
	close(log.gate) // later reads pass too
	go func() {
		for range log.reading {
		}
	}()
	<-resumed
	close(log.reading)
	if so.State() != Live {
		t.Fatalf("state %v after the catch-up", so.State())
	}
	h.broadcast(events[8])  // 9 again: a duplicate
	h.broadcast(events[10]) // 11
	for i := uint64(3); i <= 11; i++ {
		if got, want := c.next(t), frame(7, i, domain.TypeMessageSent); got != want {
			t.Fatalf("frame %q, want %q", got, want)
		}
		so.Sent()
	}
	c.none(t)
}

func TestTypingReachesTheRoomButNotTheTypist(t *testing.T) {
	bus := &fakeBus{}
	h := newTestHub(&fakeLog{}, newWatermark(0), bus)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx, eventstore.Start) }()
	<-h.Listening()
	typist, ct := newTestSession(1, 7)
	peer, cp := newTestSession(2, 7)
	catching, cc := newTestSession(3, 7)
	elsewhere, ce := newTestSession(4, 8)
	live(t, h, typist)
	live(t, h, peer)
	live(t, h, elsewhere)
	h.add(catching) // typing is not held back by a catch-up
	if err := h.Typing(ctx, typist, true); err != nil {
		t.Fatal(err)
	}
	want := `{"conversation":7,"is_typing":true,"sender":1,"type":"typing"}`
	for _, c := range []*fakeConn{cp, cc} {
		if got := c.next(t); got != want {
			t.Fatalf("frame %q, want %q", got, want)
		}
	}
	// A second "typing" at once is not sent; "stopped" always is.
	if err := h.Typing(ctx, typist, true); err != nil {
		t.Fatal(err)
	}
	if err := h.Typing(ctx, typist, false); err != nil {
		t.Fatal(err)
	}
	if got := cp.next(t); got != `{"conversation":7,"is_typing":false,"sender":1,"type":"typing"}` {
		t.Fatalf("frame %q", got)
	}
	ct.none(t)
	ce.none(t)
}

func TestCloseSessionClosesOnlyThatSessionsSockets(t *testing.T) {
	h := newTestHub(&fakeLog{}, newWatermark(0), &fakeBus{})
	ended, c1 := newTestSession(1, 7)
	other, c2 := newTestSession(1, 8)
	other.session = uuid.New()
	live(t, h, ended)
	live(t, h, other)
	h.CloseSession(ended.session)
	if msg, _ := c1.closeMsg(); msg != *loggedOutClose {
		t.Fatalf("close %v", msg)
	}
	if c2.IsClosed() {
		t.Fatal("another session's socket closed")
	}
}
