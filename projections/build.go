package projections

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// This file builds a read model from the log into a schema of its own, the
// common part of Rebuild (rebuild.go) and Verify (verify.go).

// LogReader is what rebuilds read of the event store.
type LogReader interface {
	ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error)
}

// RebuildBatch is the batch size chatctl projections rebuild uses unless
// told otherwise: a rebuild's tables are private until the swap, and each
// batch costs its own statements (a room's activity, the receipts, the
// checkpoint), so larger batches load faster: 1,000,000 events at
// 120,000 - 140,000 events/s in batches of 5,000, 149,000 - 156,000 in
// batches of 20,000 (BENCHMARKS.md). A batch of 20,000 chat events holds
// about 10 MB in memory, and the rebuild keeps three or four in flight.
const RebuildBatch = 20000

// RebuildOptions tune a rebuild.
type RebuildOptions struct {
	Logger *slog.Logger
	// BatchSize is the number of events applied per transaction. Default 5000.
	BatchSize int
	// Progress is told after each batch how many events are done.
	Progress func(done int64)
}

// The schemas built beside the live read model: a rebuild's, swapped in
// when done, and a verification's, dropped after.
var (
	rebuildSchema = migrations.ReadModel.Beside("rebuild")
	verifySchema  = migrations.ReadModel.Beside("verify")
)

func (o RebuildOptions) withDefaults() RebuildOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.Progress == nil {
		o.Progress = func(int64) {}
	}
	return o
}

// freshSchema drops schema and creates it again with the read-model tables.
func freshSchema(ctx context.Context, pool *pgxpool.Pool, schema migrations.Schema) error {
	if err := dropSchema(ctx, pool, schema); err != nil {
		return fmt.Errorf("prepare %s: %w", schema.Name(), err)
	}
	return migrations.ApplyReadModel(ctx, pool, schema)
}

// dropSchema drops schema, if it exists, and forgets its migrations.
func dropSchema(ctx context.Context, pool *pgxpool.Pool, schema migrations.Schema) error {
	if _, err := pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema.Ident()+` CASCADE`); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, forgetMigrations, schema.Name())
	return err
}

// forgetMigrations drops a schema's rows from the migrations table, so that
// the read-model set is applied to a schema of that name again.
const forgetMigrations = `DELETE FROM public.schema_migrations WHERE schema_name = $1`

// buildInto projects the log from cursor into schema, a transaction per
// batch, until the log is exhausted or, when until is set, until that
// position. It returns the new cursor and the number of events applied.
//
// It counts no unread messages: the caller sets the counters from the
// messages after (countUnread), in one statement inside the database.
func buildInto(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, schema migrations.Schema,
	cursor eventstore.Position, until *eventstore.Position, o RebuildOptions,
) (eventstore.Position, int64, error) {
	// The next batches are read from the log and decoded while the current
	// one loads, the reading, the decoding and the loading each in a
	// goroutine of its own: a rebuild's tables are private until the swap,
	// so the reading need not be in the batch's transaction (an interrupted
	// rebuild starts over).
	type batch struct {
		events []eventstore.RecordedEvent
		bb     *bulkBatch
		err    error
	}
	rctx, cancel := context.WithCancel(ctx)
	read := make(chan batch, 1)
	batches := make(chan batch, 1)
	var wg sync.WaitGroup
	// The decoder uses chat's registry: the goroutines must have stopped
	// before the caller may use chat again (a second Rebuild after an
	// interrupted one, say).
	defer func() {
		cancel()
		wg.Wait()
	}()
	// send hands b on unless the rebuild is over.
	send := func(to chan<- batch, b batch) bool {
		select {
		case to <- b:
			return true
		case <-rctx.Done():
			return false
		}
	}
	wg.Go(func() {
		defer close(read)
		from := cursor
		for {
			events, err := log.ReadAll(rctx, from, o.BatchSize)
			if err != nil {
				send(read, batch{err: fmt.Errorf("read the log: %w", err)})
				return
			}
			if until != nil {
				cut := sort.Search(len(events), func(i int) bool { return until.Less(events[i].Position) })
				events = events[:cut]
			}
			if !send(read, batch{events: events}) || len(events) == 0 {
				return
			}
			from = events[len(events)-1].Position
		}
	})
	wg.Go(func() {
		defer close(batches)
		for b := range read {
			if b.err == nil && len(b.events) > 0 {
				b.bb, b.err = chat.prepareBulk(b.events)
			}
			if !send(batches, b) || b.bb == nil {
				return
			}
		}
	})
	var done int64
	for b := range batches {
		if b.err != nil || b.bb == nil {
			return cursor, done, b.err
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := b.bb.copyMessages(ctx, tx, schema); err != nil {
				return err
			}
			if err := b.bb.loadOrdered(ctx, tx, schema); err != nil {
				return err
			}
			return saveChunkCheckpoint(ctx, tx, chat, schema, b.bb.events)
		})
		if err != nil {
			return cursor, done, fmt.Errorf("project into %s: %w", schema.Name(), err)
		}
		cursor = b.bb.events[len(b.bb.events)-1].Position
		done += int64(len(b.bb.events))
		o.Progress(done)
	}
	return cursor, done, ctx.Err()
}

// applyChunk applies events and the checkpoint to schema in tx.
func applyChunk(ctx context.Context, tx pgx.Tx, chat *Chat, schema migrations.Schema, events []eventstore.RecordedEvent) error {
	if err := chat.ApplyInto(ctx, tx, schema, events); err != nil {
		return fmt.Errorf("project into %s: %w", schema.Name(), err)
	}
	return saveChunkCheckpoint(ctx, tx, chat, schema, events)
}

// saveCheckpoint stores a projection's position in the checkpoints table
// named by %s; it never moves it back. Rebuild and Verify use it on their
// own schemas, which no other projector writes; the live projector moves its
// checkpoint with projector_commit, fenced.
const saveCheckpoint = `INSERT INTO %s AS c (projection, commit_pos, prepare_pos, updated_at) VALUES ($1, $2, $3, now())
	ON CONFLICT (projection) DO UPDATE SET commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos, updated_at = now()
	WHERE (c.commit_pos, c.prepare_pos) < (excluded.commit_pos, excluded.prepare_pos)`

// saveChunkCheckpoint moves schema's checkpoint to the last of events.
func saveChunkCheckpoint(ctx context.Context, tx pgx.Tx, chat *Chat, schema migrations.Schema, events []eventstore.RecordedEvent) error {
	through := events[len(events)-1].Position
	_, err := tx.Exec(ctx, fmt.Sprintf(saveCheckpoint, schema.Qualified(migrations.CheckpointsTable)),
		chat.Name(), int64(through.Commit), int64(through.Prepare))
	return err
}

// countUnread sets schema's unread counters from its messages and
// memberships (readmodel 0019's count_unread) once buildInto is done: the
// bulk path copies messages and applies receipts without counting them.
func countUnread(ctx context.Context, pool *pgxpool.Pool, schema migrations.Schema) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, schema.SearchPath()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT count_unread()`)
		return err
	})
	if err != nil {
		return fmt.Errorf("count the unread messages of %s: %w", schema.Name(), err)
	}
	return nil
}
