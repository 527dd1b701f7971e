package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evchat/evchat/eventstore"
)

// Group commit: appends from concurrent callers are combined into one
// transaction (one round trip, one WAL flush), each with its own expected
// revision and result. A worker takes the first waiting append and whatever
// else is queued, up to maxBatch; with no concurrency a batch is one append
// and costs what a lone append would.
const (
	appendWorkers = 1
	maxBatch      = 64
)

type appendReq struct {
	ctx      context.Context
	stream   string
	kind     int
	expected int64
	exp      eventstore.ExpectedRevision
	ids      []uuid.UUID
	types    []string
	data     []string
	meta     []string
	done     chan appendResult
}

type appendResult struct {
	res eventstore.AppendResult
	err error
}

// Append implements eventstore.Store. After Close, or when Close cuts it
// short, it returns an error wrapping ErrClosed.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) == 0 {
		return eventstore.AppendResult{}, eventstore.ErrNoEvents
	}
	r := &appendReq{ctx: ctx, stream: stream, exp: expected, done: make(chan appendResult, 1),
		ids: make([]uuid.UUID, len(events)), types: make([]string, len(events)),
		data: make([]string, len(events)), meta: make([]string, len(events))}
	for i, e := range events {
		r.ids[i] = e.ID
		if r.ids[i] == uuid.Nil {
			r.ids[i] = uuid.Must(uuid.NewV7())
		}
		r.types[i], r.data[i], r.meta[i] = e.Type, jsonOrEmpty(e.Data), jsonOrEmpty(e.Metadata)
	}
	switch {
	case expected.IsNoStream():
		r.kind = 1
	case expected.IsStreamExists():
		r.kind = 2
	default:
		if rev, ok := expected.Revision(); ok {
			r.kind, r.expected = 3, int64(rev)
		}
	}
	if err := s.enqueue(ctx, r); err != nil {
		return eventstore.AppendResult{}, err
	}
	// Once queued, the append may be committed: wait for its outcome even if
	// ctx ends, so a caller never mistakes a committed append for a failure.
	// Every queued append is answered: by a worker, or by Close.
	out := <-r.done
	return out.res, out.err
}

// enqueue queues r for the workers unless the store is closing.
func (s *Store) enqueue(ctx context.Context, r *appendReq) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return closedError(r.stream)
	}
	select {
	case s.appends <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return closedError(r.stream)
	}
}

func closedError(stream string) error {
	return fmt.Errorf("append to %s: %w", stream, ErrClosed)
}

func (s *Store) appendLoop() {
	defer s.wg.Done()
	for {
		var first *appendReq
		select {
		case <-s.ctx.Done():
			s.failQueued()
			return
		case first = <-s.appends:
		}
		if s.ctx.Err() != nil {
			first.done <- appendResult{err: closedError(first.stream)}
			s.failQueued()
			return
		}
		batch := []*appendReq{first}
		inBatch := map[string]bool{first.stream: true}
		var later []*appendReq // a second append to a stream waits for the next batch
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-s.appends:
				if inBatch[r.stream] {
					later = append(later, r)
					continue
				}
				inBatch[r.stream] = true
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.runBatch(batch)
		// Appends deferred for their stream go next, in their order.
		for len(later) > 0 {
			next, seen := later[:0:0], map[string]bool{}
			var rest []*appendReq
			for _, r := range later {
				if seen[r.stream] {
					rest = append(rest, r)
					continue
				}
				seen[r.stream] = true
				next = append(next, r)
			}
			s.runBatch(next)
			later = rest
		}
		s.poke() // a finished transaction may unblock readers even when it failed
	}
}

// failQueued answers every queued append with ErrClosed.
func (s *Store) failQueued() {
	for {
		select {
		case r := <-s.appends:
			r.done <- appendResult{err: closedError(r.stream)}
		default:
			return
		}
	}
}

// runBatch appends a batch; if the batch fails as a whole (a concurrent
// retry of the same ids, a race creating a stream), each append is retried
// alone so that one append's trouble is not its neighbours'.
func (s *Store) runBatch(batch []*appendReq) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- appendResult{err: err} // never sent to the database
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	results, err := s.execBatch(live)
	if err == nil {
		for i, r := range live {
			r.done <- results[i]
		}
		return
	}
	if len(live) == 1 || !retryAlone(err) {
		for _, r := range live {
			r.done <- s.batchError(r, err)
		}
		return
	}
	for _, r := range live {
		s.runBatch([]*appendReq{r})
	}
}

func retryAlone(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// batchError turns the failure of a one-append batch into its error. A
// unique violation of the event ids means they are stored already: a
// concurrent retry whose original result is returned.
func (s *Store) batchError(r *appendReq, err error) appendResult {
	var pgErr *pgconn.PgError
	if s.ctx.Err() != nil && (!errors.As(err, &pgErr) || pgErr.Code == "57014") {
		// Close cut the batch short. Not the caller's cancellation, so
		// the context error is not wrapped.
		return appendResult{err: fmt.Errorf("append to %s: %w (%v)", r.stream, ErrClosed, err)}
	}
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_pkey" {
		res, rerr := s.retried(context.WithoutCancel(r.ctx), r.stream, r.ids)
		return appendResult{res: res, err: rerr}
	}
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		// Two first appends raced to create the stream: the caller may retry.
		return appendResult{err: &eventstore.WrongExpectedVersionError{Stream: r.stream, Expected: r.exp, Actual: eventstore.NoRevision}}
	}
	return appendResult{err: fmt.Errorf("append to %s: %w", r.stream, classify(err))}
}

// retried returns the original result of an append whose ids are stored,
// or ErrDuplicateEventID when they are not exactly the ids of one earlier
// append to this stream.
func (s *Store) retried(ctx context.Context, stream string, ids []uuid.UUID) (eventstore.AppendResult, error) {
	var found bool
	var rev, tx, pos *int64
	err := s.pool.QueryRow(ctx, `SELECT found, last_revision, last_tx, last_position FROM append_retried($1, $2)`, stream, ids).
		Scan(&found, &rev, &tx, &pos)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, classify(err))
	}
	if !found {
		return eventstore.AppendResult{}, eventstore.ErrDuplicateEventID
	}
	return eventstore.AppendResult{Revision: uint64(*rev), Position: eventstore.Position{Commit: uint64(*tx), Prepare: uint64(*pos)}}, nil
}

func jsonOrEmpty(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

// appendBatchSQL appends a batch in one statement: one row lock per stream
// (a conditional update for the expected revision), then the events. The
// batch holds at most one append per stream. It returns, per append, the new
// last revision and the last event's position, or NULLs when the stream was
// not in the expected state.

const appendBatchSQL = `
WITH req AS (
    SELECT r.item, r.stream, r.kind, r.expected, r.cnt,
           (sum(r.cnt) OVER (ORDER BY r.item) - r.cnt)::int AS off
      FROM unnest($1::text[], $2::int[], $3::bigint[], $4::int[]) WITH ORDINALITY AS r(stream, kind, expected, cnt, item)
), any_s AS (
    INSERT INTO streams AS s (stream_id, revision)
    SELECT stream, cnt - 1 FROM req WHERE kind = 0 ORDER BY stream
    ON CONFLICT (stream_id) DO UPDATE SET revision = s.revision + excluded.revision + 1
    RETURNING s.stream_id, s.revision
), new_s AS (
    INSERT INTO streams AS s (stream_id, revision)
    SELECT stream, cnt - 1 FROM req WHERE kind = 1 ORDER BY stream
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING s.stream_id, s.revision
), upd_s AS (
    UPDATE streams s SET revision = s.revision + req.cnt
      FROM req
     WHERE s.stream_id = req.stream AND (req.kind = 2 OR (req.kind = 3 AND s.revision = req.expected))
    RETURNING s.stream_id, s.revision
), revs AS (
    SELECT * FROM any_s UNION ALL SELECT * FROM new_s UNION ALL SELECT * FROM upd_s
), ev AS (
    INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
    SELECT ($5::uuid[])[req.off + k], req.stream, revs.revision - req.cnt + k,
           ($6::text[])[req.off + k], ($7::jsonb[])[req.off + k], ($8::jsonb[])[req.off + k]
      FROM req JOIN revs ON revs.stream_id = req.stream
     CROSS JOIN LATERAL generate_series(1, req.cnt) AS k
     ORDER BY req.item, k
    RETURNING stream_id, revision, tx_id, position
)
SELECT req.item, revs.revision, ev.tx_id, ev.position
  FROM req
  LEFT JOIN revs ON revs.stream_id = req.stream
  LEFT JOIN ev ON ev.stream_id = req.stream AND ev.revision = revs.revision
 ORDER BY req.item`

func (s *Store) execBatch(batch []*appendReq) ([]appendResult, error) {
	m := len(batch)
	streams := make([]string, m)
	kinds := make([]int32, m)
	expected := make([]int64, m)
	counts := make([]int32, m)
	// The ids go as [16]byte, which pgx encodes directly: a uuid.UUID
	// goes through its driver.Valuer, a string pgx fails to encode, then
	// parses back.
	var ids [][16]byte
	var types, data, meta []string
	for i, r := range batch {
		streams[i], kinds[i], expected[i], counts[i] = r.stream, int32(r.kind), r.expected, int32(len(r.ids))
		for _, id := range r.ids {
			ids = append(ids, id)
		}
		types = append(types, r.types...)
		data = append(data, r.data...)
		meta = append(meta, r.meta...)
	}
	// The batch is not tied to any one caller's ctx: it is cancelled only
	// when the store closes.
	ctx := s.ctx
	results := make([]appendResult, m)
	var failed []int
	err := s.inTx(ctx, func(q querier) error {
		rows, err := q.Query(ctx, appendBatchSQL, streams, kinds, expected, counts, ids, types, data, meta)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var item int64
			var rev, tx, pos *int64
			if err := rows.Scan(&item, &rev, &tx, &pos); err != nil {
				return err
			}
			if rev == nil || tx == nil || pos == nil {
				failed = append(failed, int(item-1))
				continue
			}
			results[item-1] = appendResult{res: eventstore.AppendResult{
				Revision: uint64(*rev), Position: eventstore.Position{Commit: uint64(*tx), Prepare: uint64(*pos)}}}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	for _, i := range failed {
		results[i] = s.mismatch(batch[i])
	}
	return results, nil
}

// mismatch explains an append whose stream was not in the expected state:
// a retry of an append that is stored already (its original result), or a
// wrong expected version with the stream's actual revision.
func (s *Store) mismatch(r *appendReq) appendResult {
	ctx := context.WithoutCancel(r.ctx)
	res, err := s.retried(ctx, r.stream, r.ids)
	if err == nil {
		return appendResult{res: res}
	}
	if !errors.Is(err, eventstore.ErrDuplicateEventID) {
		return appendResult{err: err}
	}
	actual := eventstore.NoRevision
	err = s.pool.QueryRow(ctx, `SELECT coalesce((SELECT revision FROM streams WHERE stream_id = $1), -1)`, r.stream).Scan(&actual)
	if err != nil {
		return appendResult{err: fmt.Errorf("append to %s: %w", r.stream, classify(err))}
	}
	return appendResult{err: &eventstore.WrongExpectedVersionError{Stream: r.stream, Expected: r.exp, Actual: actual}}
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// inTx runs fn as one statement in autocommit mode, the fast path, or, with
// a CommitDelay (tests), inside an explicit transaction that waits before
// committing.
func (s *Store) inTx(ctx context.Context, fn func(querier) error) error {
	if s.opts.CommitDelay == nil {
		return fn(s.hot)
	}
	tx, err := s.hot.Begin(ctx)
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
