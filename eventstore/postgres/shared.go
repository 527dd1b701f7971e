package postgres

import (
	"context"
	"slices"
	"sync"

	"github.com/evchat/evchat/eventstore"
)

// The subscriptions of one process usually follow the log together (the
// read model's projector, the search projector, the WebSocket hub), wake on
// the same appends and read from the same cursor. sharedReads lets them do
// that read once: a subscription that asks for the batch after a cursor
// another one read recently takes that read's result instead of running the
// query again.
//
// Taking another subscription's batch is safe because a batch of readAll is
// final: no event can commit later at a position inside it (see readAll).
// What it may lack is what committed after it was read. So a result is
// "current" for a subscription only when its read started no earlier than
// the wake-up generation the subscription saw before asking: every append
// that had woken the subscriptions by then was committed before the read
// began, and any later one wakes the subscription again. An older result is
// still handed out (it moves a lagging subscription along without a query)
// but marked not current, and the subscription reads again at once.

// sharedSlots is how many recent reads are kept: enough for a lagging
// subscription to follow the reads of a leading one for a few batches.
// sharedBytes bounds the event data they keep (large messages): beyond it
// the oldest are let go, all but the newest read.
const (
	sharedSlots = 8
	sharedBytes = 8 << 20
)

// sharedRead is one read of the log, in flight until done is closed.
type sharedRead struct {
	from  eventstore.Position
	count int
	gen   uint64 // the wake-up generation when the read started
	done  chan struct{}

	// Set before done is closed, read-only after.
	events []eventstore.RecordedEvent
	hidden bool
	err    error

	size int // the events' data and metadata, once done; guarded by mu
}

// sharedReads holds the newest reads of the log, oldest first.
type sharedReads struct {
	mu    sync.Mutex
	reads []*sharedRead
	// queries counts the reads that went to the database (tests).
	queries int64
	// limit replaces sharedBytes when set (tests).
	limit int
}

// readShared returns the batch of at most count events after from, for a
// subscription that saw wake-up generation gen before asking. It takes a
// recent read's result when one started from the same cursor, unless fresh
// asks for a read of the database (after a poll interval or a wait for
// hidden rows, whose point is to look again). current is false when the
// result predates gen: the events are final, but newer ones may exist
// without a wake-up to come, so the caller reads again at once.
//
// Every caller gets its own copy of the events slice (subscribers may
// replace an event's fields in place); the events' byte slices are shared
// and must not be written.
func (s *Store) readShared(ctx context.Context, from eventstore.Position, count int, gen uint64, fresh bool) (events []eventstore.RecordedEvent, hidden, current bool, err error) {
	sh := &s.shared
	sh.mu.Lock()
	if !fresh {
		if r := sh.find(from, count); r != nil {
			sh.mu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return nil, false, false, ctx.Err()
			}
			switch {
			case r.err != nil:
				// The reader's failure may be its own (its context ended):
				// read alone.
			case r.gen >= gen:
				return slices.Clone(r.events), r.hidden, true, nil
			case len(r.events) > 0:
				return slices.Clone(r.events), false, false, nil
			}
			sh.mu.Lock()
		}
	}
	r := &sharedRead{from: from, count: count, gen: s.wake.generation(), done: make(chan struct{})}
	if len(sh.reads) == sharedSlots {
		sh.reads = slices.Delete(sh.reads, 0, 1)
	}
	sh.reads = append(sh.reads, r)
	sh.queries++
	sh.mu.Unlock()

	r.events, r.hidden, r.err = s.readAll(ctx, from, count)
	close(r.done)
	sh.mu.Lock()
	r.size = eventBytes(r.events)
	sh.trim()
	sh.mu.Unlock()
	return slices.Clone(r.events), r.hidden, true, r.err
}

// trim lets the oldest reads go while those kept hold more than
// sharedBytes (or limit), keeping the newest. Callers hold mu.
func (sh *sharedReads) trim() {
	total := 0
	for _, r := range sh.reads {
		total += r.size
	}
	limit := sharedBytes
	if sh.limit > 0 {
		limit = sh.limit
	}
	for len(sh.reads) > 1 && total > limit {
		total -= sh.reads[0].size
		sh.reads = slices.Delete(sh.reads, 0, 1)
	}
}

func eventBytes(events []eventstore.RecordedEvent) int {
	n := 0
	for _, e := range events {
		n += len(e.Data) + len(e.Metadata)
	}
	return n
}

// find returns the newest read from the cursor from of count events.
// Callers hold mu.
func (sh *sharedReads) find(from eventstore.Position, count int) *sharedRead {
	for i := len(sh.reads) - 1; i >= 0; i-- {
		if r := sh.reads[i]; r.from == from && r.count == count {
			return r
		}
	}
	return nil
}
