package commands

import (
	"context"
	"fmt"
	"sync"
)

// idBlockSize is how many message ids a process takes from the sequence at
// a time.
const idBlockSize = 64

// idBlocks hands out message ids from blocks taken from the sequence, so a
// send costs no round trip for its id. Ids from one block rise; a room only
// takes ids greater than its last message id, skipping the rest of the block
// when another process has gone past it (a fresh block is greater than
// every id taken before). A decision on a stale last id cannot be appended:
// any message appended since moved the room's revision, and the exact-
// revision append conflicts and reloads. So ids still rise in each room's
// log order, across processes.
type idBlocks struct {
	ids  IDs
	kind IDKind

	mu   sync.Mutex
	free []int64 // ascending
}

// take returns n ascending ids greater than after.
func (b *idBlocks) take(ctx context.Context, n int, after int64) ([]int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int64, 0, n)
	stale := 0
	for len(out) < n {
		for len(b.free) > 0 && b.free[0] <= after {
			b.free = b.free[1:]
		}
		if len(b.free) == 0 {
			// A fresh block lies past every id handed out before; one that
			// does not means the sequence is behind the log (a restore the
			// projector has not caught up with yet).
			if stale++; stale > 16 {
				return nil, fmt.Errorf("the %s id sequence is behind the log (at or below %d): let the projector catch up", b.kind, after)
			}
			block, err := b.ids.NextN(ctx, b.kind, max(idBlockSize, n-len(out)))
			if err != nil {
				return nil, err
			}
			b.free = block
			continue
		}
		take := min(n-len(out), len(b.free))
		out = append(out, b.free[:take]...)
		b.free = b.free[take:]
		after = out[len(out)-1]
	}
	return out, nil
}
