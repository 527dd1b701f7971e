package realtime

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/clocktest"
)

// fakePresence is a one-process PresenceStore that reports its calls.
type fakePresence struct {
	mu     sync.Mutex
	online map[int64]bool
	calls  chan string
}

func (f *fakePresence) Connected(_ context.Context, user int64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	first := !f.online[user]
	f.online[user] = true
	f.calls <- fmt.Sprint("connected ", user)
	return first, nil
}

func (f *fakePresence) Disconnected(_ context.Context, user int64, _ time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.online[user]
	delete(f.online, user)
	f.calls <- fmt.Sprint("disconnected ", user)
	return last, nil
}

func (f *fakePresence) Heartbeat(context.Context) ([]Seen, error)       { return nil, nil }
func (f *fakePresence) Gone(context.Context, time.Time) ([]Seen, error) { return nil, nil }

func (f *fakePresence) next(t *testing.T) string {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no presence call")
		return ""
	}
}

// TestPresenceDebounced: the first session of a user connects them; the
// last one disconnects them only after the debounce, and a session back
// within it cancels that.
func TestPresenceDebounced(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	store := &fakePresence{online: map[int64]bool{}, calls: make(chan string, 16)}
	h := newTestHub(&fakeLog{}, newWatermark(0), &fakeBus{})
	h.cfg.Clock, h.cfg.Presence, h.cfg.PresenceDebounce = clock, store, time.Second
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = h.Run(ctx, eventstore.Start) }()
	<-h.Listening()

	start := func(user int64) *Session {
		so, _ := newTestSession(user, 7)
		h.Start(ctx, so, h.cfg.Watermark.Position(), nil, func(context.Context) (bool, error) { return true, nil })
		return so
	}
	a := start(1)
	if got := store.next(t); got != "connected 1" {
		t.Fatalf("first session: %s; want connected 1", got)
	}
	b := start(1)
	h.Remove(a)
	h.Remove(b)
	clock.Advance(time.Second - time.Millisecond)
	start(1) // back within the window
	clock.Advance(time.Hour)
	start(2) // another user: the next call is theirs
	if got := store.next(t); got != "connected 2" {
		t.Fatalf("after a reconnect within the window: %s; want connected 2", got)
	}
	c := start(3)
	store.next(t)
	h.Remove(c)
	clock.Advance(time.Second)
	if got := store.next(t); got != "disconnected 3" {
		t.Fatalf("after the debounce: %s; want disconnected 3", got)
	}
}
