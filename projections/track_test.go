package projections_test

import (
	"context"
	"sync"
	"testing"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/projections"
)

// announcements is a fake projections.Announcements: the test announces by
// calling the listener it holds.
type announcements struct {
	mu       sync.Mutex
	onNotify func(string)
	listened chan struct{}
	stopped  chan struct{}
}

func (a *announcements) Listen(onNotify func(string), _ func()) func() {
	a.mu.Lock()
	a.onNotify = onNotify
	a.mu.Unlock()
	close(a.listened)
	return func() { close(a.stopped) }
}

// An announcement advances the watermark without waiting for the poll, and
// Track stops listening when it returns.
func TestTrackFollowsAnnouncements(t *testing.T) {
	l := newTestLog(t)
	w := projections.NewWatermark()
	a := &announcements{listened: make(chan struct{}), stopped: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- projections.Track(ctx, l.pool, w, projections.ChatName, hung*10, a) }()
	<-a.listened
	want := eventstore.Position{Commit: 42, Prepare: 42}
	a.mu.Lock()
	a.onNotify(want.String())
	a.mu.Unlock()
	wctx, wdone := context.WithTimeout(t.Context(), hung)
	defer wdone()
	if err := w.Wait(wctx, want); err != nil {
		t.Fatalf("watermark did not reach the announced position: %v", err)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Track returned %v, want context.Canceled", err)
	}
	select {
	case <-a.stopped:
	default:
		t.Fatal("Track returned without ending its subscription")
	}
}
