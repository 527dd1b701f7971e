// Package postgres is the PostgreSQL adapter of the event-store port.
//
// Appends go through one SQL function (one round trip, one transaction). The
// whole log is read in (transaction id, position) order and only below the
// oldest running transaction, so no reader skips an event when transactions
// commit out of order. Positions are (tx_id, position) pairs.
//
// Costs of that filter: a long-running transaction anywhere in the cluster
// holds whole-log readers back until it ends (keep transactions short; lag is
// reported by Head versus the projection checkpoints), and a dump/restore
// into another cluster resets transaction ids, so restore a log by replaying
// it into a fresh store rather than by pg_dump.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
)

// Channel is the NOTIFY channel that hints at new events.
const Channel = "evchat_events"

var _ eventstore.Store = (*Store)(nil)

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// PollInterval bounds the latency of a missed notification. Default 500ms.
	PollInterval time.Duration
	// BatchSize is the subscription read size. Default 512.
	BatchSize int
	// CommitDelay is for tests only: when set, each append runs in an
	// explicit transaction that sleeps this long after writing and before
	// committing, so that concurrent appends commit out of order.
	CommitDelay func() time.Duration
}

// Store is the PostgreSQL event store. Create it with New; Close it.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	opts Options

	wake *broadcaster

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	listenOnce sync.Once
	pokes      chan struct{}
}

// New returns a Store on pool. The schema must be migrated (package migrations).
func New(pool *pgxpool.Pool, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		pool: pool, log: opts.Logger, opts: opts, wake: newBroadcaster(),
		ctx: ctx, cancel: cancel, pokes: make(chan struct{}, 1),
	}
	s.wg.Add(1)
	go s.notifyLoop()
	return s
}

// Close stops the store's background goroutines. It does not close the pool.
func (s *Store) Close() {
	s.cancel()
	s.wg.Wait()
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) == 0 {
		return eventstore.AppendResult{}, eventstore.ErrNoEvents
	}
	ids := make([]uuid.UUID, len(events))
	types := make([]string, len(events))
	data := make([]string, len(events))
	meta := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
		if ids[i] == uuid.Nil {
			ids[i] = uuid.New()
		}
		types[i] = e.Type
		data[i] = jsonOrEmpty(e.Data)
		meta[i] = jsonOrEmpty(e.Metadata)
	}
	kind, exp := 0, int64(0)
	switch {
	case expected.IsNoStream():
		kind = 1
	case expected.IsStreamExists():
		kind = 2
	default:
		if r, ok := expected.Revision(); ok {
			kind, exp = 3, int64(r)
		}
	}
	defer s.poke() // a finished transaction may unblock readers even when it failed

	for attempt := 0; ; attempt++ {
		var ok, retried bool
		var actual int64
		var lastRev, lastTx, lastPos *int64
		err := s.inTx(ctx, func(q querier) error {
			return q.QueryRow(ctx, appendSQL, stream, kind, exp, ids, types, data, meta).
				Scan(&ok, &retried, &actual, &lastRev, &lastTx, &lastPos)
		})
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				switch {
				case pgErr.Code == "P0002":
					return eventstore.AppendResult{}, eventstore.ErrDuplicateEventID
				case pgErr.Code == "23505" && attempt < 3:
					// Two appends raced: a concurrent retry of the same ids
					// (the next attempt returns the original result), or two
					// first appends to a new stream under Any.
					continue
				}
			}
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, classify(err))
		}
		if !ok {
			return eventstore.AppendResult{}, &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: actual}
		}
		return eventstore.AppendResult{
			Revision: uint64(*lastRev),
			Position: eventstore.Position{Commit: uint64(*lastTx), Prepare: uint64(*lastPos)},
		}, nil
	}
}

const appendSQL = `SELECT ok, retried, actual, last_revision, last_tx, last_position
	FROM append_events($1, $2, $3, $4, $5, $6::jsonb[], $7::jsonb[])`

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn as one statement in autocommit mode, the fast path, or, with
// a CommitDelay, inside an explicit transaction that waits before committing.
func (s *Store) inTx(ctx context.Context, fn func(querier) error) error {
	if s.opts.CommitDelay == nil {
		return fn(s.pool)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	time.Sleep(s.opts.CommitDelay())
	return tx.Commit(ctx)
}

func jsonOrEmpty(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

const selectEvent = `SELECT event_id, stream_id, revision, tx_id, position, type, data::text, metadata::text, created_at FROM events `

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	if count <= 0 {
		return nil, nil
	}
	var rows pgx.Rows
	var err error
	if dir == eventstore.Backwards {
		start := int64(from)
		if from == eventstore.End || start < 0 {
			start = 1<<63 - 1
		}
		rows, err = s.pool.Query(ctx, selectEvent+`WHERE stream_id = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3`, stream, start, count)
	} else {
		if from > 1<<62 {
			from = 1 << 62
		}
		rows, err = s.pool.Query(ctx, selectEvent+`WHERE stream_id = $1 AND revision >= $2 ORDER BY revision LIMIT $3`, stream, int64(from), count)
	}
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, classify(err))
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, classify(err))
	}
	if len(events) == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM streams WHERE stream_id = $1)`, stream).Scan(&exists); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, classify(err))
		}
		if !exists {
			return nil, eventstore.ErrStreamNotFound
		}
	}
	return events, nil
}

// ReadAll implements eventstore.Store: only rows of transactions older than
// every running transaction are read, so the result never has a hole that a
// later commit could fill. When the batch is not full and rows exist that
// the horizon still hides, it waits (up to 5 s, growing delays from 1 ms) for
// the older transactions to end, so a caller reads what committed before it
// called.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	deadline := time.Now().Add(5 * time.Second)
	var delay time.Duration
	for {
		events, hidden, err := s.readAll(ctx, from, count)
		if err != nil || !hidden || time.Now().After(deadline) {
			return events, err
		}
		delay = grow(delay, time.Millisecond, 50*time.Millisecond)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// readAll also reports whether committed-or-running rows exist past from that
// the visibility horizon still hides, so a subscriber knows to look again soon.
func (s *Store) readAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, bool, error) {
	if count <= 0 {
		return nil, false, nil
	}
	rows, err := s.pool.Query(ctx, selectEvent+`
		WHERE (tx_id, position) > ($1, $2)
		  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
		ORDER BY tx_id, position LIMIT $3`, int64(from.Commit), int64(from.Prepare), count)
	if err != nil {
		return nil, false, fmt.Errorf("read all: %w", classify(err))
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, false, fmt.Errorf("read all: %w", classify(err))
	}
	if len(events) == count {
		return events, false, nil
	}
	after := from
	if len(events) > 0 {
		after = events[len(events)-1].Position
	}
	var hidden bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE (tx_id, position) > ($1, $2))`,
		int64(after.Commit), int64(after.Prepare)).Scan(&hidden); err != nil {
		return nil, false, fmt.Errorf("read all: %w", classify(err))
	}
	return events, hidden, nil
}

func scanEvents(rows pgx.Rows) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		var e eventstore.RecordedEvent
		var rev, tx, pos int64
		var data, meta string
		if err := rows.Scan(&e.ID, &e.Stream, &rev, &tx, &pos, &e.Type, &data, &meta, &e.Created); err != nil {
			return nil, err
		}
		e.Revision = uint64(rev)
		e.Position = eventstore.Position{Commit: uint64(tx), Prepare: uint64(pos)}
		e.Data, e.Metadata = []byte(data), []byte(meta)
		e.Created = e.Created.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Head implements eventstore.Store. It reports the last committed event,
// which whole-log readers reach once older transactions have ended.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	var tx, pos int64
	err := s.pool.QueryRow(ctx, `SELECT tx_id, position FROM events
		ORDER BY tx_id DESC, position DESC LIMIT 1`).Scan(&tx, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("head: %w", classify(err))
	}
	return eventstore.Position{Commit: uint64(tx), Prepare: uint64(pos)}, nil
}

// Ping implements eventstore.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", classify(err))
	}
	return nil
}

// classify marks connection failures as eventstore.ErrUnavailable.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return err
	}
	return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
}
