// Package postgres is the PostgreSQL adapter of the event-store port.
//
// Appends go through one SQL function (one round trip, one transaction). The
// whole log is read in (transaction id, position) order and only below the
// oldest running transaction, so no reader skips an event when transactions
// commit out of order. Positions are (tx_id, position) pairs.
//
// Costs of that filter: a long-running transaction holds whole-log readers
// back until it ends. Readers look past transactions that provably cannot
// append (running, and holding no lock on events: a rebuild, a read-model
// batch, another database's work), which rests on one rule: a transaction
// that writes events writes nothing before them (the append statement takes
// its lock on events before its transaction gets an id). An append that
// stays open still holds readers back, and so does any prepared (two-phase)
// transaction, in any database of the cluster, until COMMIT or ROLLBACK
// PREPARED; keep transactions short, and watch the lag that chatctl
// projections status and /readyz report. A dump/restore into another
// cluster resets transaction ids, so restore a log by replaying it into a
// fresh store rather than by pg_dump.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/pgerr"
	"github.com/evchat/evchat/internal/wait"
)

// Channel is the conventional name of the channel that carries Hints.
const Channel = "evchat_events"

// Hints carries "new events" hints between processes: package
// postgres/notifier implements it over LISTEN/NOTIFY, on the process's one
// listening connection. A hint is only a hint: a lost one costs a
// subscriber latency (it polls), never data.
type Hints interface {
	// Listen calls onNotify for every hint from any process, and onReady
	// each time hints start being heard again (hints may have been missed
	// before). Both must return quickly. stop ends the subscription.
	Listen(onNotify func(payload string), onReady func()) (stop func())
	// Notify hints every listening process, this one included.
	Notify(ctx context.Context, payload string) error
}

var (
	_ eventstore.Store         = (*Store)(nil)
	_ eventstore.StreamsReader = (*Store)(nil)
)

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// PollInterval bounds the latency of a missed notification. Default 500ms.
	PollInterval time.Duration
	// BatchSize is the subscription read size. Default 512.
	BatchSize int
	// Hints, when set, carries hints between processes: appends announce
	// themselves, and subscriptions wake on other processes' appends. Without
	// it, subscriptions wake at once on this process's appends and poll for
	// other processes' (chatctl runs so).
	Hints Hints
	// CommitDelay is for tests only: when set, each append runs in an
	// explicit transaction that sleeps this long after writing and before
	// committing, so that concurrent appends commit out of order.
	CommitDelay func() time.Duration
}

// Store is the PostgreSQL event store. Create it with New; Close it.
type Store struct {
	pool *pgxpool.Pool
	// hot runs the append and log-read statements. Its sessions use generic
	// plans: PostgreSQL would otherwise plan the append statement on every
	// execution, which costs more than executing it.
	hot  *pgxpool.Pool
	log  *slog.Logger
	opts Options

	wake   *broadcaster
	shared sharedReads // the subscriptions' recent reads of the log

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	listenOnce sync.Once
	unlisten   func() // ends the Hints subscription, once started
	pokes      chan struct{}

	appends chan *appendReq
	// closeMu orders enqueues against Close: an enqueue holds it shared,
	// and Close takes it to set closed, after which nothing is queued, so
	// Close can answer whatever the workers left in the queue.
	closeMu sync.RWMutex
	closed  bool
}

// ErrClosed is wrapped by the error of an append made after Close, or cut
// short by it. It wraps eventstore.ErrUnavailable.
var ErrClosed = fmt.Errorf("postgres event store closed: %w", eventstore.ErrUnavailable)

// New returns a Store on pool. The schema must be migrated (package
// migrations). It opens a few connections of its own with pool's
// configuration; Close closes them.
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
	hotCfg := pool.Config().Copy()
	hotCfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	hotCfg.MaxConns, hotCfg.MinConns = appendWorkers+3, 0
	hot, err := pgxpool.NewWithConfig(ctx, hotCfg) // connects lazily: no error from the network here
	if err != nil {
		hot = pool // a configuration the main pool accepted; keep working with it
	}
	s := &Store{
		pool: pool, hot: hot, log: opts.Logger, opts: opts, wake: newBroadcaster(),
		ctx: ctx, cancel: cancel, pokes: make(chan struct{}, 1),
		appends: make(chan *appendReq, 1024),
	}
	s.wg.Add(appendWorkers)
	if opts.Hints != nil {
		s.wg.Add(1)
		go s.notifyLoop()
	}
	for range appendWorkers {
		go s.appendLoop()
	}
	return s
}

// Close stops the store's background goroutines. It does not close the pool.
// Appends in flight end with an error wrapping ErrClosed (an append cut short
// may still have committed, as after a lost connection), and so does every
// later append. It is safe to call more than once.
func (s *Store) Close() {
	s.cancel() // first: frees enqueues waiting for room in the queue
	s.closeMu.Lock()
	s.closed = true
	s.closeMu.Unlock()
	s.wg.Wait()
	s.listenOnce.Do(func() {}) // no subscription starts after Close
	if s.unlisten != nil {
		s.unlisten()
	}
	// An enqueue that raced the workers' exit is still queued: answer it.
	s.failQueued()
	if s.hot != s.pool {
		s.hot.Close()
	}
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

// readStreamsSQL answers many stream reads in one statement: each read is a
// row of the arrays, and its events come back tagged with the read's index.
const readStreamsSQL = `SELECT r.i, e.event_id, e.stream_id, e.revision, e.tx_id, e.position, e.type, e.data::text, e.metadata::text, e.created_at
  FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bool[]) WITH ORDINALITY AS r(stream, rev, n, back, i)
  CROSS JOIN LATERAL (
      (SELECT * FROM events WHERE NOT r.back AND stream_id = r.stream AND revision >= r.rev ORDER BY revision LIMIT r.n)
      UNION ALL
      (SELECT * FROM events WHERE r.back AND stream_id = r.stream AND revision <= r.rev ORDER BY revision DESC LIMIT r.n)
  ) e
 ORDER BY r.i, CASE WHEN r.back THEN -e.revision ELSE e.revision END`

// ReadStreams implements eventstore.StreamsReader: one round trip for all
// the reads.
func (s *Store) ReadStreams(ctx context.Context, reads []eventstore.StreamRead) ([][]eventstore.RecordedEvent, error) {
	out := make([][]eventstore.RecordedEvent, len(reads))
	if len(reads) == 0 {
		return out, nil
	}
	streams := make([]string, len(reads))
	revs := make([]int64, len(reads))
	counts := make([]int32, len(reads))
	back := make([]bool, len(reads))
	for i, rd := range reads {
		streams[i], counts[i] = rd.Stream, int32(min(max(rd.Count, 0), 1<<30))
		back[i] = rd.Dir == eventstore.Backwards
		switch {
		case back[i] && (rd.From == eventstore.End || rd.From > 1<<62):
			revs[i] = 1<<63 - 1
		case rd.From > 1<<62:
			revs[i] = 1 << 62
		default:
			revs[i] = int64(rd.From)
		}
	}
	rows, err := s.pool.Query(ctx, readStreamsSQL, streams, revs, counts, back)
	if err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		e, err := scanEvent(rows, &i)
		if err != nil {
			return nil, fmt.Errorf("read %d streams: %w", len(reads), classify(err))
		}
		out[i-1] = append(out[i-1], e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(reads), classify(err))
	}
	return out, nil
}

// ReadAll implements eventstore.Store: only rows of transactions older than
// every running transaction are read, so the result never has a hole that a
// later commit could fill. When the batch is not full and rows exist that
// the horizon still hides, it waits (up to 5 s, growing delays from 1 ms) for
// the older transactions to end, so a caller reads what committed before it
// called.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	deadline := time.Now().Add(5 * time.Second)
	delay := wait.Backoff{First: time.Millisecond, Max: 50 * time.Millisecond}
	for {
		events, hidden, err := s.readAll(ctx, from, count)
		if err != nil || !hidden || time.Now().After(deadline) {
			return events, err
		}
		if err := wait.Sleep(ctx, delay.Next()); err != nil {
			return nil, err
		}
	}
}

// readAll also reports whether rows exist past the returned ones that the
// visibility horizon still hides, so a subscriber knows to look again soon.
// One round trip: the visible rows, then a marker row when hidden rows exist.
func (s *Store) readAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, bool, error) {
	if count <= 0 {
		return nil, false, nil
	}
	events, hidden, err := s.readBelow(ctx, readAllSQL, from, count)
	if err != nil || !hidden || len(events) == count {
		return events, hidden, err
	}
	// Rows are hidden by a running transaction. If the transactions that
	// hold the horizon back cannot be appending (a long read-model or
	// rebuild transaction, a transaction of another database), read past
	// them: see readPastOthersSQL.
	after := from
	if len(events) > 0 {
		after = events[len(events)-1].Position
	}
	more, hidden, err := s.readBelow(ctx, readPastOthersSQL, after, count-len(events))
	return append(events, more...), hidden, err
}

// readPrealloc is the room a log read makes for its rows before it has any.
const readPrealloc = 8

func (s *Store) readBelow(ctx context.Context, query string, from eventstore.Position, count int) ([]eventstore.RecordedEvent, bool, error) {
	rows, err := s.hot.Query(ctx, query, logRowFormats, int64(from.Commit), int64(from.Prepare), count)
	if err != nil {
		return nil, false, fmt.Errorf("read all: %w", classify(err))
	}
	defer rows.Close()
	// A live read returns a few rows of the count it asks for: a slice of
	// the whole count (144 bytes an event) for every read was most of what
	// a busy server allocated. Catch-up reads grow it.
	out := make([]eventstore.RecordedEvent, 0, min(count, readPrealloc))
	hidden := false
	for rows.Next() {
		var e eventstore.RecordedEvent
		marker, err := decodeLogRow(rows.RawValues(), &e)
		if err != nil {
			return nil, false, fmt.Errorf("read all: %w", err)
		}
		if marker {
			hidden = true
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read all: %w", classify(err))
	}
	return out, hidden && len(out) < count, nil
}

// readAllSQL reads the next visible rows of the log in (tx_id, position)
// order, below the oldest running transaction, and appends one marker row
// when rows past the cursor exist that the horizon still hides.
const readAllSQL = `
WITH x AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin),` + readBelowHorizon

// readPastOthersSQL is readAllSQL with a horizon that ignores transactions
// that cannot be appending. Every append statement takes its lock on events
// before its transaction gets an id (PostgreSQL locks a statement's tables
// before executing it), and nothing writes events after writing anything
// else in the same transaction. So a transaction that, in one snapshot of
// the lock table, is still running in a session (it holds its transactionid
// lock) and holds no lock on events can never add events below the horizon.
// Any other transaction of the snapshot — one that holds the lock, one that
// ended since the snapshot was taken (its rows may be invisible to it), or a
// prepared (two-phase) transaction — still bounds it. A prepared transaction
// has no session: pg_locks shows its locks with a NULL pid, so matching its
// events lock by pid would find none, and its rows become visible only at
// COMMIT PREPARED, possibly long after later appends. It always holds the
// horizon.
const readPastOthersSQL = `
WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
locks AS MATERIALIZED (SELECT locktype, pid, transactionid, relation, database FROM pg_locks WHERE granted),
others AS MATERIALIZED (
    SELECT t.transactionid AS x FROM locks t
     WHERE t.locktype = 'transactionid' AND t.pid IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM locks l
                        WHERE l.pid = t.pid AND l.locktype = 'relation' AND l.relation = 'events'::regclass
                          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))),
x AS MATERIALIZED (
    SELECT least(pg_snapshot_xmax(snap.s)::text::bigint,
                 (SELECT min(x::text::bigint) FROM pg_snapshot_xip(snap.s) AS x
                   WHERE x::xid NOT IN (SELECT o.x FROM others o))) AS xmin
      FROM snap),` + readBelowHorizon

// readBelowHorizon is the rest of a log read, given a horizon x.xmin.
//
// The first hidden row, if any, is the first at or past both the cursor
// and the horizon: h.hc and h.hp make that one bound, so that the look-up
// starts its index scan there (with the horizon as a second condition
// instead, PostgreSQL starts at the cursor and filters every row up to the
// log's end: a catch-up read from the start of a long log would cost a
// scan of all of it per batch). The bounds reach the scans as sub-selects,
// which PostgreSQL evaluates once, before the scan, and can then use in
// the index conditions. The visible rows come out of the index in order
// and the marker row sorts last (its positions are NULL): the two merge
// without sorting the rows.
const readBelowHorizon = `
h AS MATERIALIZED (
    SELECT x.xmin,
           greatest(x.xmin, $1::bigint) AS hc,
           CASE WHEN x.xmin > $1::bigint THEN 0 ELSE $2::bigint END AS hp
      FROM x)
SELECT * FROM (
    SELECT false AS marker, e.event_id, e.stream_id, e.revision, e.tx_id, e.position, e.type,
           e.data::text, e.metadata::text, e.created_at
      FROM events e
     WHERE (e.tx_id, e.position) > ($1, $2) AND e.tx_id < (SELECT h.xmin FROM h)
     ORDER BY e.tx_id, e.position LIMIT $3) v
UNION ALL
SELECT true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
 WHERE (SELECT e.tx_id FROM events e
         WHERE (e.tx_id, e.position) > ((SELECT h.hc FROM h), (SELECT h.hp FROM h))
         ORDER BY e.tx_id, e.position LIMIT 1) IS NOT NULL
ORDER BY tx_id, position`

func scanEvents(rows pgx.Rows) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// scanEvent scans a row of selectEvent's columns, after the destinations
// of any columns before them.
func scanEvent(rows pgx.Rows, before ...any) (eventstore.RecordedEvent, error) {
	var e eventstore.RecordedEvent
	var rev, tx, pos int64
	var data, meta string
	if err := rows.Scan(append(before, &e.ID, &e.Stream, &rev, &tx, &pos, &e.Type, &data, &meta, &e.Created)...); err != nil {
		return eventstore.RecordedEvent{}, err
	}
	e.Revision = uint64(rev)
	e.Position = eventstore.Position{Commit: uint64(tx), Prepare: uint64(pos)}
	e.Data, e.Metadata = []byte(data), []byte(meta)
	e.Created = e.Created.UTC()
	return e, nil
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

// classify marks connection failures as eventstore.ErrUnavailable: every
// failure that is not the server's answer, and the answers of a server
// that is shutting down or starting (pgerr.Unreachable).
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !pgerr.Unreachable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
}
