package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/eventstore"
)

// ReadAllOnce is one pass of ReadAll, without its wait for hidden rows: the
// events, and whether rows past them are still hidden by the horizon.
func (s *Store) ReadAllOnce(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, bool, error) {
	return s.readAll(ctx, from, count)
}

// ReadShared is readShared: what a subscription reads after seeing wake-up
// generation gen.
func (s *Store) ReadShared(ctx context.Context, from eventstore.Position, count int, gen uint64, fresh bool) ([]eventstore.RecordedEvent, bool, bool, error) {
	return s.readShared(ctx, from, count, gen, fresh)
}

// Generation is the wake-up generation subscriptions see now.
func (s *Store) Generation() uint64 { return s.wake.generation() }

// SharedQueries is how many of the subscriptions' reads went to the
// database.
func (s *Store) SharedQueries() int64 {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	return s.shared.queries
}

// Wake wakes the subscriptions as the end of an append does (which comes
// after the append's caller is answered).
func (s *Store) Wake() { s.wake.signal() }

// LimitSharedBytes bounds the event data the shared reads keep at n bytes.
func (s *Store) LimitSharedBytes(n int) {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	s.shared.limit = n
}

// DecodeLogRow is decodeLogRow: a log read's row from its binary values.
var DecodeLogRow = decodeLogRow

// LogReadStatements are the statements of log reads, by name.
var LogReadStatements = map[string]string{"readAllSQL": readAllSQL, "readPastOthersSQL": readPastOthersSQL}

// ScanEvents is scanEvents: rows of selectEvent's columns through pgx's Scan.
func ScanEvents(rows pgx.Rows) ([]eventstore.RecordedEvent, error) { return scanEvents(rows) }
