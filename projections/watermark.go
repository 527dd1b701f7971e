package projections

import (
	"context"
	"sync"

	"github.com/evchat/evchat/eventstore"
)

// Watermark is how far the read model has been projected, as seen by this
// process. Writers wait on it for read-your-writes; the WebSocket fan-out
// waits on it so that a socket never hears of an event before the read
// model shows it.
type Watermark struct {
	mu      sync.Mutex
	pos     eventstore.Position
	changed chan struct{}
}

// NewWatermark returns a watermark at the start of the log.
func NewWatermark() *Watermark { return &Watermark{changed: make(chan struct{})} }

// Position returns the current watermark.
func (w *Watermark) Position() eventstore.Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

// Advance moves the watermark forward to p; it never moves back.
func (w *Watermark) Advance(p eventstore.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pos.Less(p) {
		return
	}
	w.pos = p
	close(w.changed)
	w.changed = make(chan struct{})
}

// Wait blocks until the watermark is at or past p, or ctx ends (ctx.Err()).
func (w *Watermark) Wait(ctx context.Context, p eventstore.Position) error {
	for {
		w.mu.Lock()
		reached := !w.pos.Less(p)
		ch := w.changed
		w.mu.Unlock()
		if reached {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Changed returns a channel closed at the next advance.
func (w *Watermark) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}
