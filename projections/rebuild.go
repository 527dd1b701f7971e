package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

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

// RebuildSchema and VerifySchema are the schemas built beside the live one.
const (
	RebuildSchema = "readmodel_rebuild"
	VerifySchema  = "readmodel_verify"
)

// Rebuild builds a fresh chat read model from the start of the log in a
// schema beside the live one while the server keeps serving, catches up to
// the head, and swaps it in within one transaction. Until the swap the live
// tables are untouched, so an interrupted rebuild loses nothing and can be
// run again. It returns the number of events replayed.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, o RebuildOptions) (int64, error) {
	o = o.withDefaults()
	if err := freshSchema(ctx, pool, RebuildSchema); err != nil {
		return 0, err
	}
	// Secondary indexes are built once at the end: a sorted build is far
	// cheaper than maintaining them row by row, and the apply path looks rows
	// up by primary key only.
	indexes, err := dropSecondaryIndexes(ctx, pool, RebuildSchema)
	if err != nil {
		return 0, err
	}
	cursor, done, err := buildInto(ctx, pool, log, chat, RebuildSchema, eventstore.Position{}, nil, o)
	if err != nil {
		return done, err
	}
	if err := createIndexes(ctx, pool, indexes); err != nil {
		return done, fmt.Errorf("rebuild: %w", err)
	}
	for _, t := range verifiedTables {
		if _, err := pool.Exec(ctx, `ANALYZE `+pgx.Identifier{RebuildSchema, t.name}.Sanitize()); err != nil {
			return done, fmt.Errorf("rebuild: analyze: %w", err)
		}
	}
	// The swap: park the live projector (its batches lock the checkpoints
	// table first), project what came meanwhile, and rename. A batch parked
	// meanwhile then runs against the swapped-in tables, whose checkpoint is
	// past the batch's start: the fence refuses it, and the projector starts
	// again from that checkpoint.
	n, cursor, err := swapIn(ctx, pool, log, chat, cursor, o)
	done += n
	if err != nil {
		return done, err
	}
	o.Logger.Info("rebuilt read model swapped in", "events", done, "through", cursor.String())
	return done, nil
}

// swapLockWait bounds how long one swap attempt waits for the live tables.
// It stays below PostgreSQL's default deadlock_timeout (1s) so that when a
// reader's multi-table query and the swap wait on each other, the swap gives
// up and retries before the deadlock detector would cancel the reader.
const swapLockWait = 300 * time.Millisecond

// swapIn renames the rebuilt schema over the live one in one transaction,
// after applying the events that arrived since cursor. An attempt that cannot
// take every live table's lock in time rolls back and tries again, so the
// swap never fails a concurrent reader. It returns the number of events
// applied and the position reached.
func swapIn(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, cursor eventstore.Position, o RebuildOptions) (int64, eventstore.Position, error) {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		n, reached, err := swapOnce(ctx, pool, log, chat, cursor, o)
		if err == nil || !lockContention(err) || attempt == 50 {
			return n, reached, err
		}
		o.Logger.Info("rebuild swap waits for readers, retrying", "attempt", attempt, "err", err)
		t := time.NewTimer(backoff + time.Duration(rand.Int64N(int64(backoff))))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, cursor, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

func swapOnce(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, cursor eventstore.Position, o RebuildOptions) (int64, eventstore.Position, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, cursor, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := lockLive(ctx, tx); err != nil {
		return 0, cursor, fmt.Errorf("rebuild: lock the live read model: %w", err)
	}
	// This transaction already has a transaction id: PostgreSQL logs an
	// ACCESS EXCLUSIVE lock for standbys (wal_level replica and up), which
	// takes one, so lockLive gave it one. On the PostgreSQL store that id
	// holds the plain horizon of log readers back while the swap runs; the
	// reads below still reach the head because the store reads past running
	// transactions that hold no lock on the events table, as this one. What
	// a read misses, the live projector applies after the swap, from the
	// swapped-in checkpoint.
	var rest []eventstore.RecordedEvent
	for {
		events, err := log.ReadAll(ctx, cursor, o.BatchSize)
		if err != nil {
			return 0, cursor, fmt.Errorf("rebuild: read the log: %w", err)
		}
		if len(events) == 0 {
			break
		}
		rest = append(rest, events...)
		cursor = events[len(events)-1].Position
	}
	if len(rest) > 0 {
		if err := applyChunk(ctx, tx, chat, RebuildSchema, rest); err != nil {
			return 0, cursor, err
		}
	}
	old := pgx.Identifier{"readmodel_old"}.Sanitize()
	for _, stmt := range []string{
		`DROP SCHEMA IF EXISTS ` + old + ` CASCADE`,
		`ALTER SCHEMA readmodel RENAME TO readmodel_old`,
		`ALTER SCHEMA ` + RebuildSchema + ` RENAME TO readmodel`,
		`DROP SCHEMA ` + old + ` CASCADE`,
		`DELETE FROM public.schema_migrations WHERE schema_name = '` + RebuildSchema + `'`,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return 0, cursor, fmt.Errorf("rebuild: swap: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, cursor, fmt.Errorf("rebuild: swap: %w", err)
	}
	return int64(len(rest)), cursor, nil
}

// lockLive takes every live read-model table in ACCESS EXCLUSIVE mode, the
// checkpoints table first (as the projector does), within swapLockWait in
// all. Holding them all before anything else is done means the swap never
// waits on a reader while holding a lock the reader needs for long.
func lockLive(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'readmodel'
		ORDER BY tablename <> 'checkpoints', tablename`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{"readmodel", t}.Sanitize()
	}
	wait := fmt.Sprintf("%dms", swapLockWait.Milliseconds())
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)`, wait); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(names, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT`)
	return err
}

// lockContention reports whether err is a lock wait that ran out of time or
// a deadlock: a swap attempt that may succeed when tried again.
func lockContention(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "55P03", "57014", "40P01": // lock_not_available, query_canceled, deadlock_detected
		return true
	}
	return false
}

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

// dropSecondaryIndexes drops the indexes of schema that back no constraint
// and returns their definitions.
func dropSecondaryIndexes(ctx context.Context, pool *pgxpool.Pool, schema string) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = $1 AND NOT EXISTS (
			SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = $1::regnamespace)`, schema)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", schema, err)
	}
	type index struct{ name, def string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var i index
		return i, r.Scan(&i.name, &i.def)
	})
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", schema, err)
	}
	defs := make([]string, 0, len(list))
	for _, i := range list {
		if _, err := pool.Exec(ctx, `DROP INDEX `+pgx.Identifier{schema, i.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", i.name, err)
		}
		defs = append(defs, i.def)
	}
	return defs, nil
}

// createIndexes builds indexes two at a time, each with room to sort in memory.
func createIndexes(ctx context.Context, pool *pgxpool.Pool, defs []string) error {
	work := make(chan string)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				errs <- err
				for range work {
				}
				return
			}
			defer conn.Release()
			_, err = conn.Exec(ctx, `SET maintenance_work_mem = '256MB'`)
			for def := range work {
				if err == nil {
					_, err = conn.Exec(ctx, def)
				}
			}
			if err == nil {
				_, err = conn.Exec(ctx, `RESET maintenance_work_mem`)
			}
			errs <- err
		}()
	}
	for _, d := range defs {
		work <- d
	}
	close(work)
	return errors.Join(<-errs, <-errs)
}

// freshSchema drops schema and creates it again with the read-model tables.
func freshSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if _, err := pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		return fmt.Errorf("prepare %s: %w", schema, err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM public.schema_migrations WHERE schema_name = $1`, schema); err != nil {
		return fmt.Errorf("prepare %s: %w", schema, err)
	}
	return migrations.ApplyReadModel(ctx, pool, schema)
}

// buildInto projects the log from cursor into schema, a transaction per
// batch, until the log is exhausted or, when until is set, until that
// position. It returns the new cursor and the number of events applied.
func buildInto(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, schema string,
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
			return cursor, done, fmt.Errorf("project into %s: %w", schema, err)
		}
		cursor = b.bb.events[len(b.bb.events)-1].Position
		done += int64(len(b.bb.events))
		o.Progress(done)
	}
	return cursor, done, ctx.Err()
}

// applyChunk applies events and the checkpoint to schema in tx.
func applyChunk(ctx context.Context, tx pgx.Tx, chat *Chat, schema string, events []eventstore.RecordedEvent) error {
	if err := chat.ApplyBulk(ctx, tx, schema, events); err != nil {
		return fmt.Errorf("project into %s: %w", schema, err)
	}
	return saveChunkCheckpoint(ctx, tx, chat, schema, events)
}

func saveChunkCheckpoint(ctx context.Context, tx pgx.Tx, chat *Chat, schema string, events []eventstore.RecordedEvent) error {
	through := events[len(events)-1].Position
	_, err := tx.Exec(ctx, strings.Replace(saveCheckpoint, "INTO checkpoints", "INTO "+pgx.Identifier{schema, "checkpoints"}.Sanitize(), 1),
		chat.Name(), int64(through.Commit), int64(through.Prepare))
	return err
}

// Replay applies the log from position from (exclusive) to the head to the
// live read model again. The chat handlers are idempotent and converge when
// replayed beside the live projector, so replay restores rows lost or
// damaged after from without doubling any. It returns the events replayed.
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
			return done, nil
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT set_config('search_path', 'readmodel, public', true)`)
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

// TableDiff is one table's comparison by Verify.
type TableDiff struct {
	Table       string
	LiveRows    int64
	RebuiltRows int64
	LiveSum     string
	RebuiltSum  string
	OnlyLive    []string // up to 10 rows only in the live table
	OnlyRebuilt []string // up to 10 rows only in the rebuilt table
	Equal       bool     // the checksums are equal
}

// verifiedTables are the read-model tables and the keys that order them.
var verifiedTables = []struct{ name, order string }{
	{"users", "id"},
	{"conversations", "id"},
	{"members", "conversation_id, user_id"},
	{"messages", "id"},
	{"inbox", "user_id, message_id"},
	{"attachments", "key, conversation_id"},
}

// Verify rebuilds the read model into a scratch schema up to the live
// checkpoint and compares the two row for row (a checksum per table, and the
// differing rows of a table whose checksums differ). The live projector is
// parked while the two are compared. The scratch schema is dropped after.
func Verify(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, o RebuildOptions) ([]TableDiff, eventstore.Position, error) {
	o = o.withDefaults()
	if err := freshSchema(ctx, pool, VerifySchema); err != nil {
		return nil, eventstore.Position{}, err
	}
	defer func() {
		_, _ = pool.Exec(context.WithoutCancel(ctx), `DROP SCHEMA IF EXISTS `+VerifySchema+` CASCADE`)
		_, _ = pool.Exec(context.WithoutCancel(ctx), `DELETE FROM public.schema_migrations WHERE schema_name = $1`, VerifySchema)
	}()
	live, err := ReadCheckpoint(ctx, pool, "readmodel", chat.Name())
	if err != nil {
		return nil, live, err
	}
	cursor, _, err := buildInto(ctx, pool, log, chat, VerifySchema, eventstore.Position{}, &live, o)
	if err != nil {
		return nil, live, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, live, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, `LOCK TABLE readmodel.checkpoints IN EXCLUSIVE MODE`); err != nil {
		return nil, live, err
	}
	// The live model may have moved on while the scratch one was built.
	if live, err = ReadCheckpoint(ctx, tx, "readmodel", chat.Name()); err != nil {
		return nil, live, err
	}
	var rest []eventstore.RecordedEvent
	for cursor.Less(live) {
		events, err := log.ReadAll(ctx, cursor, o.BatchSize)
		if err != nil {
			return nil, live, err
		}
		cut := sort.Search(len(events), func(i int) bool { return live.Less(events[i].Position) })
		if cut == 0 {
			break
		}
		rest = append(rest, events[:cut]...)
		cursor = events[cut-1].Position
	}
	if len(rest) > 0 {
		if err := applyChunk(ctx, tx, chat, VerifySchema, rest); err != nil {
			return nil, live, err
		}
	}
	var diffs []TableDiff
	for _, t := range verifiedTables {
		d := TableDiff{Table: t.name}
		sum := func(schema string, rows *int64, out *string) error {
			return tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY %s)), '')
				FROM %s t`, t.order, pgx.Identifier{schema, t.name}.Sanitize())).Scan(rows, out)
		}
		if err := sum("readmodel", &d.LiveRows, &d.LiveSum); err != nil {
			return nil, live, err
		}
		if err := sum(VerifySchema, &d.RebuiltRows, &d.RebuiltSum); err != nil {
			return nil, live, err
		}
		d.Equal = d.LiveSum == d.RebuiltSum
		if !d.Equal {
			var err error
			if d.OnlyLive, err = except(ctx, tx, "readmodel", VerifySchema, t.name); err != nil {
				return nil, live, err
			}
			if d.OnlyRebuilt, err = except(ctx, tx, VerifySchema, "readmodel", t.name); err != nil {
				return nil, live, err
			}
		}
		diffs = append(diffs, d)
	}
	return diffs, live, nil
}

func except(ctx context.Context, tx pgx.Tx, a, b, table string) ([]string, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT t::text FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) t LIMIT 10`,
		pgx.Identifier{a, table}.Sanitize(), pgx.Identifier{b, table}.Sanitize()))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
