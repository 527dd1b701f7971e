package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// searchRebuildSchema is where RebuildSearch builds the index.
var searchRebuildSchema = migrations.Search.Beside("rebuild")

// RebuildSearch builds a fresh search index from the start of the log in a
// schema beside the live one while the server serves (searches use the
// live index until the swap), catches up to the head and swaps it in within
// one transaction, as Rebuild does for the chat read model, which it leaves
// alone. The live search projector's batches are parked by the swap and
// then refused by the fence (the swapped-in checkpoint is past them), like
// the chat projector's. It returns the number of events replayed.
func RebuildSearch(ctx context.Context, pool *pgxpool.Pool, log LogReader, search *Search, o RebuildOptions) (int64, error) {
	o = o.withDefaults()
	if err := MarkRebuilding(ctx, pool, SearchName, true); err != nil {
		return 0, err
	}
	defer func() { _ = MarkRebuilding(context.WithoutCancel(ctx), pool, SearchName, false) }()
	schema := searchRebuildSchema
	if err := dropSchema(ctx, pool, schema); err != nil {
		return 0, fmt.Errorf("prepare %s: %w", schema.Name(), err)
	}
	if err := migrations.ApplySearch(ctx, pool, schema); err != nil {
		return 0, err
	}
	// The index is built once at the end, far cheaper than row by row.
	indexes, err := dropSecondaryIndexes(ctx, pool, schema)
	if err != nil {
		return 0, err
	}
	var done int64
	cursor := eventstore.Start
	for {
		events, err := log.ReadAll(ctx, cursor, o.BatchSize)
		if err != nil {
			return done, fmt.Errorf("rebuild search: read the log: %w", err)
		}
		if len(events) == 0 {
			break
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return applySearchChunk(ctx, tx, search, schema, events)
		}); err != nil {
			return done, fmt.Errorf("rebuild search: %w", err)
		}
		cursor = events[len(events)-1].Position
		done += int64(len(events))
		o.Progress(done)
	}
	if err := createIndexes(ctx, pool, indexes); err != nil {
		return done, fmt.Errorf("rebuild search: %w", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE `+schema.Qualified("messages")); err != nil {
		return done, fmt.Errorf("rebuild search: analyze: %w", err)
	}
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		n, reached, err := swapSearch(ctx, pool, log, search, cursor, o)
		if err == nil {
			done += n
			o.Logger.Info("rebuilt search index swapped in", "events", done, "through", reached.String())
			return done, nil
		}
		if !lockContention(err) || attempt == 50 {
			return done, err
		}
		t := time.NewTimer(backoff + time.Duration(rand.Int64N(int64(backoff))))
		select {
		case <-ctx.Done():
			t.Stop()
			return done, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// applySearchChunk applies events and the checkpoint to schema in tx.
func applySearchChunk(ctx context.Context, tx pgx.Tx, search *Search, schema migrations.Schema, events []eventstore.RecordedEvent) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('search_path', $1, true)`, schema.SearchPath())
	if err := newSearchIn(search.registry, schema).Apply(b, events); err != nil {
		return err
	}
	through := events[len(events)-1].Position
	b.Queue(fmt.Sprintf(saveCheckpoint, schema.Qualified(migrations.CheckpointsTable)), search.Name(), int64(through.Commit), int64(through.Prepare))
	return tx.SendBatch(ctx, b).Close()
}

// swapSearch renames the rebuilt index over the live one in one
// transaction, after applying what arrived since cursor. The live tables
// are locked first, the checkpoints table first as the projector does,
// within swapLockWait; contention rolls back and is retried.
func swapSearch(ctx context.Context, pool *pgxpool.Pool, log LogReader, search *Search, cursor eventstore.Position, o RebuildOptions) (int64, eventstore.Position, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, cursor, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	live, old := migrations.Search, migrations.Search.Beside("old")
	wait := fmt.Sprintf("%dms", swapLockWait.Milliseconds())
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)`, wait); err != nil {
		return 0, cursor, err
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+live.Qualified(migrations.CheckpointsTable)+`, `+live.Qualified("messages")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return 0, cursor, fmt.Errorf("rebuild search: lock the live index: %w", err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT`); err != nil {
		return 0, cursor, err
	}
	var n int64
	for {
		events, err := log.ReadAll(ctx, cursor, o.BatchSize)
		if err != nil {
			return 0, cursor, fmt.Errorf("rebuild search: read the log: %w", err)
		}
		if len(events) == 0 {
			break
		}
		if err := applySearchChunk(ctx, tx, search, searchRebuildSchema, events); err != nil {
			return 0, cursor, fmt.Errorf("rebuild search: %w", err)
		}
		n += int64(len(events))
		cursor = events[len(events)-1].Position
	}
	for _, stmt := range []string{
		`DROP SCHEMA IF EXISTS ` + old.Ident() + ` CASCADE`,
		`ALTER SCHEMA ` + live.Ident() + ` RENAME TO ` + old.Ident(),
		`ALTER SCHEMA ` + searchRebuildSchema.Ident() + ` RENAME TO ` + live.Ident(),
		`DROP SCHEMA ` + old.Ident() + ` CASCADE`,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return 0, cursor, fmt.Errorf("rebuild search: swap: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, forgetMigrations, searchRebuildSchema.Name()); err != nil {
		return 0, cursor, fmt.Errorf("rebuild search: swap: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, cursor, fmt.Errorf("rebuild search: swap: %w", err)
	}
	return n, cursor, nil
}
