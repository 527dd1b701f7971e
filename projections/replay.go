package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// Replay applies the log from position from (exclusive) to the head to the
// live read model again. The chat handlers are idempotent and converge when
// replayed beside the live projector, so replay restores rows lost or
// damaged after from without doubling any. The unread counters (readmodel
// 0019) are sums that a statement replayed beside the live projector can
// take from a room that moved meanwhile, so once the log is replayed they
// are counted again from the messages (recountUnread). It returns the
// events replayed.
func Replay(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, from eventstore.Position, o RebuildOptions) (int64, error) {
	o = o.withDefaults()
	var done int64
	cursor := from
	for {
		events, err := log.ReadAll(ctx, cursor, o.BatchSize)
		if err != nil {
			return done, fmt.Errorf("replay: read the log: %w", err)
		}
		if len(events) == 0 {
			if err := recountUnread(ctx, pool); err != nil {
				return done, fmt.Errorf("replay: %w", err)
			}
			return done, nil
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT set_config('search_path', $1, true)`, migrations.ReadModel.SearchPath())
		if err := chat.Apply(b, events); err != nil {
			return done, err
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
			return done, fmt.Errorf("replay: %w", err)
		}
		cursor = events[len(events)-1].Position
		done += int64(len(events))
		o.Progress(done)
	}
}

// recountUnread counts the live read model's unread messages again with the
// chat projection paused, so that no batch moves a counter meanwhile (a
// batch in flight is refused at its commit and projected again after). A
// projection an operator paused stays paused.
func recountUnread(ctx context.Context, pool *pgxpool.Pool) error {
	st, err := ReadState(ctx, pool, ChatName)
	if err != nil {
		return err
	}
	if !st.Paused {
		if err := Pause(ctx, pool, ChatName); err != nil {
			return err
		}
	}
	err = countUnread(ctx, pool, migrations.ReadModel)
	if !st.Paused {
		err = errors.Join(err, Resume(context.WithoutCancel(ctx), pool, ChatName))
	}
	return err
}
