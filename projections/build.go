package projections

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

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
func buildInto(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, schema migrations.Schema,
	cursor eventstore.Position, until *eventstore.Position, o RebuildOptions,
) (eventstore.Position, int64, error) {
	// The next batch is read from the log and decoded while the current one
	// loads, and each batch's inbox rows load on a second connection beside
	// its messages: a rebuild's tables are private until the swap, so a
	// batch need not be one transaction (an interrupted rebuild starts over).
	type batch struct {
		bb  *bulkBatch
		err error
	}
	rctx, cancel := context.WithCancel(ctx)
	batches := make(chan batch, 2)
	reader := make(chan struct{})
	// The reader decodes with chat's registry: it must have stopped before
	// the caller may use chat again (a second Rebuild after an interrupted
	// one, say).
	defer func() {
		cancel()
		<-reader
	}()
	go func() {
		defer close(reader)
		defer close(batches)
		from := cursor
		for {
			events, err := log.ReadAll(rctx, from, o.BatchSize)
			if err == nil && until != nil {
				cut := sort.Search(len(events), func(i int) bool { return until.Less(events[i].Position) })
				events = events[:cut]
			}
			var bb *bulkBatch
			if err == nil && len(events) > 0 {
				bb, err = chat.prepareBulk(events)
			}
			if err != nil || len(events) == 0 {
				if err != nil {
					err = fmt.Errorf("read the log: %w", err)
				}
				select {
				case batches <- batch{err: err}:
				case <-rctx.Done():
				}
				return
			}
			select {
			case batches <- batch{bb: bb}:
			case <-rctx.Done():
				return
			}
			from = events[len(events)-1].Position
		}
	}()
	var done int64
	for b := range batches {
		if b.err != nil || b.bb == nil {
			return cursor, done, b.err
		}
		inbox := make(chan error, 1)
		go func() { inbox <- b.bb.copyInbox(ctx, pool, schema) }()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := b.bb.copyMessages(ctx, tx, schema); err != nil {
				return err
			}
			if err := <-inbox; err != nil {
				return err
			}
			inbox = nil
			if err := b.bb.loadOrdered(ctx, tx, schema); err != nil {
				return err
			}
			return saveChunkCheckpoint(ctx, tx, chat, schema, b.bb.events)
		})
		if inbox != nil {
			<-inbox // never leave the copy running
		}
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
	if err := chat.ApplyBulk(ctx, tx, schema, events); err != nil {
		return fmt.Errorf("project into %s: %w", schema.Name(), err)
	}
	return saveChunkCheckpoint(ctx, tx, chat, schema, events)
}

// saveCheckpoint stores a projection's position in the checkpoints table
// named by %s; it never moves it back. Rebuild and Verify use it on their
// own schemas, which no other projector writes; the live projector moves its
// checkpoint with fenceCheckpoint.
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
