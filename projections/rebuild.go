package projections

import (
	"context"
	"errors"
	"fmt"
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

// Rebuild builds a fresh chat read model from the start of the log in a
// schema beside the live one while the server keeps serving, catches up to
// the head, and swaps it in within one transaction. Until the swap the live
// tables are untouched, so an interrupted rebuild loses nothing and can be
// run again. It returns the number of events replayed.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, o RebuildOptions) (int64, error) {
	o = o.withDefaults()
	if err := freshSchema(ctx, pool, rebuildSchema); err != nil {
		return 0, err
	}
	// Secondary indexes are built once at the end: a sorted build is far
	// cheaper than maintaining them row by row, and the apply path looks rows
	// up by primary key only.
	indexes, err := dropSecondaryIndexes(ctx, pool, rebuildSchema)
	if err != nil {
		return 0, err
	}
	// Each phase's time is logged: where a rebuild spends it.
	phase := time.Now()
	phaseDone := func(name string) {
		o.Logger.Info("rebuild phase done", "phase", name, "took", time.Since(phase).Round(time.Millisecond))
		phase = time.Now()
	}
	cursor, done, err := buildInto(ctx, pool, log, chat, rebuildSchema, eventstore.Position{}, nil, o)
	if err != nil {
		return done, err
	}
	phaseDone("load")
	if err := countUnread(ctx, pool, rebuildSchema); err != nil {
		return done, fmt.Errorf("rebuild: %w", err)
	}
	phaseDone("unread counts")
	// The messages' indexes first: they are the largest, and the small
	// ones then fill in beside the last of them. The tables are analyzed
	// as the last indexes are built.
	// (Only the order depends on how pg_indexes writes the table's name.)
	on := " ON " + rebuildSchema.Name() + ".messages "
	sort.SliceStable(indexes, func(i, j int) bool {
		return strings.Contains(indexes[i], on) && !strings.Contains(indexes[j], on)
	})
	var analyze []string
	for _, t := range rebuildSchema.Tables() {
		analyze = append(analyze, `ANALYZE `+rebuildSchema.Qualified(t.Name))
	}
	if err := createIndexes(ctx, pool, indexes, analyze...); err != nil {
		return done, fmt.Errorf("rebuild: %w", err)
	}
	phaseDone("indexes")
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
	phaseDone("swap")
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
		if err := applyChunk(ctx, tx, chat, rebuildSchema, rest); err != nil {
			return 0, cursor, err
		}
	}
	live, old := migrations.ReadModel, migrations.ReadModel.Beside("old")
	for _, stmt := range []string{
		`DROP SCHEMA IF EXISTS ` + old.Ident() + ` CASCADE`,
		`ALTER SCHEMA ` + live.Ident() + ` RENAME TO ` + old.Ident(),
		`ALTER SCHEMA ` + rebuildSchema.Ident() + ` RENAME TO ` + live.Ident(),
		`DROP SCHEMA ` + old.Ident() + ` CASCADE`,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return 0, cursor, fmt.Errorf("rebuild: swap: %w", err)
		}
	}
	// The live schema's rows already name the files its tables were made by.
	if _, err := tx.Exec(ctx, forgetMigrations, rebuildSchema.Name()); err != nil {
		return 0, cursor, fmt.Errorf("rebuild: swap: %w", err)
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
	live := migrations.ReadModel
	var tables []string
	for _, t := range live.Tables() {
		tables = append(tables, t.Name)
	}
	sort.Strings(tables) // the rest in one fixed order
	names := []string{live.Qualified(migrations.CheckpointsTable)}
	for _, t := range tables {
		names = append(names, live.Qualified(t))
	}
	wait := fmt.Sprintf("%dms", swapLockWait.Milliseconds())
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)`, wait); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(names, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT`)
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
