package commands

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// UndeliveredLookup tells which messages still wait to be marked delivered
// to a receiver, as the read model knows it.
type UndeliveredLookup interface {
	// Undelivered returns, of ids, the messages of conversation that have
	// receiver among their receivers and not among those they were
	// delivered to, ascending.
	Undelivered(ctx context.Context, conversation, receiver int64, ids []int64) ([]int64, error)
}

// DeliveriesConfig tunes a Deliveries.
type DeliveriesConfig struct {
	Lookup UndeliveredLookup
	Logger *slog.Logger
	// BatchSize is how many pending message ids make a flush start before
	// its interval is up (default 500); FlushEvery is the longest a
	// delivery waits to be recorded (default 200 ms). MaxPending bounds
	// the ids waiting (default 20 × BatchSize): past it, deliveries are
	// dropped, and the next socket frame or listing of those messages
	// records them.
	BatchSize  int
	FlushEvery time.Duration
	MaxPending int
}

// deliveryKey is one receiver in one room.
type deliveryKey struct{ conversation, receiver int64 }

// Deliveries records delivery receipts out of the way of the frames and
// lists that cause them: Record only notes them; Run appends them in bulk,
// one MessagesDelivered per receiver and room per flush, leaving out what
// the read model shows delivered already.
type Deliveries struct {
	svc *Service
	cfg DeliveriesConfig

	mu      sync.Mutex
	pending map[deliveryKey]map[int64]struct{}
	count   int
	dropped int
	full    chan struct{} // signalled when BatchSize ids are pending
}

// NewDeliveries returns a Deliveries that records through svc.
func NewDeliveries(svc *Service, cfg DeliveriesConfig) *Deliveries {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 200 * time.Millisecond
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 20 * cfg.BatchSize
	}
	return &Deliveries{svc: svc, cfg: cfg, pending: map[deliveryKey]map[int64]struct{}{}, full: make(chan struct{}, 1)}
}

// Record notes that messages of conversation reached receiver. It never
// blocks and never fails: a frame write or a list answer does not wait on
// the log.
func (d *Deliveries) Record(conversation, receiver int64, ids ...int64) {
	if len(ids) == 0 {
		return
	}
	k := deliveryKey{conversation, receiver}
	d.mu.Lock()
	set := d.pending[k]
	if set == nil {
		set = map[int64]struct{}{}
		d.pending[k] = set
	}
	for _, id := range ids {
		if _, ok := set[id]; ok {
			continue
		}
		if d.count >= d.cfg.MaxPending {
			d.dropped++
			continue
		}
		set[id] = struct{}{}
		d.count++
	}
	full := d.count >= d.cfg.BatchSize
	d.mu.Unlock()
	if full {
		select {
		case d.full <- struct{}{}:
		default:
		}
	}
}

// Run flushes every FlushEvery, or sooner when a batch is full, until ctx
// ends; then it flushes once more.
func (d *Deliveries) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			d.Flush(fctx)
			cancel()
			return ctx.Err()
		case <-t.C:
		case <-d.full:
		}
		if ctx.Err() == nil { // else the last flush comes next
			d.Flush(ctx)
		}
	}
}

// Flush records what is pending now. A failed append is logged and its
// deliveries dropped: the next frame or listing of those messages
// records them again. A flush whose ctx ends stops there and drops what it
// has not recorded the same way: quietly when ctx was canceled (the
// process shutting down: no failure), with one warning when it ran out of
// time.
func (d *Deliveries) Flush(ctx context.Context) {
	d.mu.Lock()
	pending, dropped := d.pending, d.dropped
	d.pending, d.count, d.dropped = map[deliveryKey]map[int64]struct{}{}, 0, 0
	d.mu.Unlock()
	if dropped > 0 {
		d.cfg.Logger.Warn("delivery receipts dropped: too many pending", "dropped", dropped)
	}
	keys := make([]deliveryKey, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b deliveryKey) int {
		if a.conversation != b.conversation {
			return cmp.Compare(a.conversation, b.conversation)
		}
		return cmp.Compare(a.receiver, b.receiver)
	})
	done := 0
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		ids := make([]int64, 0, len(pending[k]))
		for id := range pending[k] {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if d.cfg.Lookup != nil {
			var err error
			if ids, err = d.cfg.Lookup.Undelivered(ctx, k.conversation, k.receiver, ids); err != nil {
				if ctx.Err() != nil {
					break // the flush's end, not this receiver's failure
				}
				d.cfg.Logger.Warn("delivery receipts: look-up failed", "conversation", k.conversation, "err", err)
				done++
				continue
			}
		}
		if _, err := d.svc.RecordDeliveries(ctx, k.conversation, k.receiver, ids); err != nil {
			if ctx.Err() != nil {
				break
			}
			d.cfg.Logger.Warn("delivery receipts: append failed", "conversation", k.conversation, "err", err)
		}
		done++
	}
	if left := len(keys) - done; left > 0 {
		if errors.Is(ctx.Err(), context.Canceled) {
			d.cfg.Logger.Debug("delivery receipts left unrecorded: flush canceled", "receivers", left)
		} else {
			d.cfg.Logger.Warn("delivery receipts left unrecorded: flush ran out of time", "receivers", left, "err", ctx.Err())
		}
	}
}
