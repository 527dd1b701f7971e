package commands

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// Projected is how far the read model has been projected
// (projections.Watermark).
type Projected interface {
	// Wait blocks until the read model has projected the log through p, or
	// ctx ends (ctx.Err()).
	Wait(ctx context.Context, p eventstore.Position) error
}

// gatedIDs hands out no id until the read model has projected the log
// through after (the log's head when the process started). The projector
// moves each id sequence past the ids of the events it projects, in the
// batch's transaction; a read model younger than its log (a new database
// for an EventStoreDB log, a restore by replay) has sequences behind the log
// until it has caught up, and an id taken then may be in use already: a
// message id of another room, which the read model then keeps only once.
// While closed, a command waits at most wait, then fails with
// domain.ErrUnavailable. On a normal start the read model is at the head
// already and the gate opens at the first id.
type gatedIDs struct {
	IDs
	after     eventstore.Position
	projected Projected
	wait      time.Duration
	log       *slog.Logger
	open      atomic.Bool
}

// ready returns nil once the read model has reached g.after.
func (g *gatedIDs) ready(ctx context.Context, kind IDKind) error {
	if g.open.Load() {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	if err := g.projected.Wait(wctx, g.after); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the %s id sequence may be behind the log until the read model reaches %s: %w", kind, g.after, domain.ErrUnavailable)
	}
	if g.open.CompareAndSwap(false, true) {
		g.log.Info("id sequences are past the log; taking ids", "log_head_at_start", g.after.String())
	}
	return nil
}

func (g *gatedIDs) Next(ctx context.Context, kind IDKind) (int64, error) {
	if err := g.ready(ctx, kind); err != nil {
		return 0, err
	}
	return g.IDs.Next(ctx, kind)
}

func (g *gatedIDs) NextN(ctx context.Context, kind IDKind, n int) ([]int64, error) {
	if err := g.ready(ctx, kind); err != nil {
		return nil, err
	}
	return g.IDs.NextN(ctx, kind, n)
}
