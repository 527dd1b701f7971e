package http

import (
	"context"
	"sync"
	"time"

	"github.com/evchat/evchat/eventstore"
)

// heads shares look-ups of the log's head among the reads that need one
// at the same time (ReadWaitHead): under read load, one look-up a read was
// a sixth of the server's CPU and a round trip to the store each.
//
// A read must wait for a head looked up after it started, or it could
// miss a write answered just before. So the reads that ask while a look-up
// is in flight do not take its answer: they share the next look-up, which
// starts once the one in flight has returned. There is at most one
// look-up in flight and one gathering callers; a read waits at most for
// the end of the one in flight and then for its own.
type heads struct {
	head func(context.Context) (eventstore.Position, error)

	mu       sync.Mutex
	inFlight bool
	next     *headLookup // gathering the callers of the next look-up
}

// headLookup is one look-up and the answer its callers share.
type headLookup struct {
	done    chan struct{}
	pos     eventstore.Position
	err     error
	callers int // the calls that share it, so far (tests)
}

// headTimeout bounds a shared look-up: it runs on no one caller's context,
// since a caller that gives up must not fail the others.
const headTimeout = 10 * time.Second

func newHeads(head func(context.Context) (eventstore.Position, error)) *heads {
	return &heads{head: head}
}

// Head returns a head of the log looked up after the call began.
func (h *heads) Head(ctx context.Context) (eventstore.Position, error) {
	h.mu.Lock()
	if h.next == nil {
		h.next = &headLookup{done: make(chan struct{})}
	}
	l := h.next
	l.callers++
	if !h.inFlight {
		// Nothing in flight: the look-up this call gathered starts now.
		h.inFlight, h.next = true, nil
		go h.run(l)
	}
	h.mu.Unlock()
	select {
	case <-l.done:
		return l.pos, l.err
	case <-ctx.Done():
		return eventstore.Position{}, ctx.Err()
	}
}

// run looks the head up for l's callers, then starts the look-up gathered
// meanwhile, if any.
func (h *heads) run(l *headLookup) {
	ctx, cancel := context.WithTimeout(context.Background(), headTimeout)
	l.pos, l.err = h.head(ctx)
	cancel()
	close(l.done)
	h.mu.Lock()
	next := h.next
	if next == nil {
		h.inFlight = false
		h.mu.Unlock()
		return
	}
	h.next = nil
	h.mu.Unlock()
	go h.run(next)
}
