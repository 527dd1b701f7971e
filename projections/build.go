package projections

import (
	"context"
	"errors"
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
// It writes no inbox rows, only the messages' read_by: the caller drops the
// inbox's key before (dropInboxKey), derives the inbox from the messages
// after (fillInbox) and adds the key back. That is the bulk of a rebuild's
// rows (a row per participant per message) written in two statements
// inside the database, with no index to keep up, instead of sent over the
// wire in order.
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
				b.bb, b.err = chat.prepareBulk(b.events, true)
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
	if err := chat.ApplyBulk(ctx, tx, schema, events); err != nil {
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

// inboxKey is how to add back the inbox's primary key: its unique index,
// built beside the other indexes, then the constraint taking it over.
type inboxKey struct{ index, attach string }

// dropInboxKey drops the primary key of schema's inbox, which must be
// empty, and returns how to add it back.
func dropInboxKey(ctx context.Context, pool *pgxpool.Pool, schema migrations.Schema) (inboxKey, error) {
	inbox := schema.Qualified("inbox")
	var name, index string
	if err := pool.QueryRow(ctx, `SELECT conname, pg_get_indexdef(conindid) FROM pg_constraint
		WHERE conrelid = $1::regclass AND contype = 'p'`, inbox).Scan(&name, &index); err != nil {
		return inboxKey{}, fmt.Errorf("inbox key of %s: %w", schema.Name(), err)
	}
	id := pgx.Identifier{name}.Sanitize()
	if _, err := pool.Exec(ctx, `ALTER TABLE `+inbox+` DROP CONSTRAINT `+id); err != nil {
		return inboxKey{}, fmt.Errorf("drop the inbox key of %s: %w", schema.Name(), err)
	}
	return inboxKey{index: index, attach: `ALTER TABLE ` + inbox + ` ADD CONSTRAINT ` + id + ` PRIMARY KEY USING INDEX ` + id}, nil
}

// addBack builds the key's index with the other indexes (createIndexes,
// then the statements after), and makes it the primary key. A plain ADD
// CONSTRAINT would lock the inbox against the other index builds.
func (k inboxKey) addBack(ctx context.Context, pool *pgxpool.Pool, indexes []string, after ...string) error {
	if err := createIndexes(ctx, pool, append([]string{k.index}, indexes...), after...); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, k.attach); err != nil {
		return fmt.Errorf("inbox key: %w", err)
	}
	return nil
}

// fillInboxSQL writes the inbox rows of the messages whose id is $2 modulo
// $1, as the projection of each MessageSent does (queueMessage): the sender's
// row read, a row per other receiver (once, however often the event names
// them), unread unless they read it (read_by, see readDeferredSQL), each at
// its message's log position. %[1]s is the inbox, %[2]s the messages.
const fillInboxSQL = `INSERT INTO %[1]s (user_id, message_id, conversation_id, unread, commit_pos, prepare_pos)
	SELECT m.sender_id, m.id, m.conversation_id, false, m.commit_pos, m.prepare_pos
	  FROM %[2]s m WHERE (m.id %% $1 + $1) %% $1 = $2
	UNION ALL
	SELECT r, m.id, m.conversation_id, NOT r = ANY(m.read_by), m.commit_pos, m.prepare_pos
	  FROM %[2]s m, unnest(m.receivers) WITH ORDINALITY AS x(r, k)
	 WHERE (m.id %% $1 + $1) %% $1 = $2 AND r <> m.sender_id AND array_position(m.receivers, r) = k`

// fillInbox derives schema's inbox from its messages once buildInto is
// done, in parts on connections of their own; a part that fails stops the
// others.
func fillInbox(ctx context.Context, pool *pgxpool.Pool, schema migrations.Schema) error {
	const parts = 2
	sql := fmt.Sprintf(fillInboxSQL, schema.Qualified("inbox"), schema.Qualified("messages"))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, parts)
	for i := range parts {
		go func() {
			_, err := pool.Exec(ctx, sql, parts, i)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var err error
	for range parts {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		return fmt.Errorf("fill the inbox of %s: %w", schema.Name(), err)
	}
	return nil
}
