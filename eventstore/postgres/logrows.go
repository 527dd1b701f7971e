package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/eventstore"
)

// Log reads (readBelow) are the store's hottest path: every subscriber's
// catch-up and every rebuild reads the whole log through them. Their rows
// are decoded here straight from PostgreSQL's binary encodings, asked for
// column by column (logRowFormats), instead of through pgx's Scan, whose
// per-column plans and pointer destinations cost more than the reading
// itself.

// The columns of a log read: marker, event_id, stream_id, revision, tx_id,
// position, type, data, metadata, created_at.
const logRowColumns = 10

// logRowFormats asks for every column of a log read in binary.
var logRowFormats = pgx.QueryResultFormats{
	pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode,
	pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode,
}

// pgEpoch is where timestamptz's binary encoding counts from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

var errLogRow = errors.New("malformed log row")

// decodeLogRow decodes one row of a log read into e, or reports it as the
// marker row. The payloads are copied (vals is only good until the next
// row), into one allocation.
func decodeLogRow(vals [][]byte, e *eventstore.RecordedEvent) (marker bool, err error) {
	if len(vals) != logRowColumns {
		return false, fmt.Errorf("%w: %d columns", errLogRow, len(vals))
	}
	if len(vals[0]) != 1 {
		return false, fmt.Errorf("%w: marker", errLogRow)
	}
	if vals[0][0] != 0 {
		return true, nil
	}
	if len(vals[1]) != 16 {
		return false, fmt.Errorf("%w: event_id", errLogRow)
	}
	copy(e.ID[:], vals[1])
	rev, ok1 := int8Value(vals[3])
	tx, ok2 := int8Value(vals[4])
	pos, ok3 := int8Value(vals[5])
	created, ok4 := int8Value(vals[9])
	if !ok1 || !ok2 || !ok3 || !ok4 || vals[2] == nil || vals[6] == nil || vals[7] == nil || vals[8] == nil {
		return false, fmt.Errorf("%w: null or short column", errLogRow)
	}
	if created == math.MaxInt64 || created == math.MinInt64 {
		return false, fmt.Errorf("%w: infinite created_at", errLogRow)
	}
	e.Stream = string(vals[2])
	e.Revision = uint64(rev)
	e.Position = eventstore.Position{Commit: uint64(tx), Prepare: uint64(pos)}
	e.Type = eventTypes.get(vals[6])
	payloads := make([]byte, len(vals[7])+len(vals[8]))
	n := copy(payloads, vals[7])
	copy(payloads[n:], vals[8])
	e.Data = payloads[:n:n]
	e.Metadata = payloads[n:]
	secs, micros := created/1e6, created%1e6
	if micros < 0 {
		secs, micros = secs-1, micros+1e6
	}
	e.Created = time.Unix(pgEpoch+secs, micros*1000).UTC()
	return false, nil
}

// int8Value decodes a binary int8; ok is false for NULL or a wrong length.
func int8Value(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// eventTypes holds the event type names seen, so that a log read does not
// allocate the same few strings for every row. It only grows by types that
// are in the log, a few dozen.
var eventTypes = newInterner(256)

// interner shares strings: get returns an earlier string equal to b when
// there is one, and keeps up to max of them.
type interner struct {
	mu   sync.RWMutex
	max  int
	seen map[string]string
}

func newInterner(max int) *interner {
	return &interner{max: max, seen: map[string]string{}}
}

func (in *interner) get(b []byte) string {
	in.mu.RLock()
	s, ok := in.seen[string(b)] // no allocation: a map look-up by converted bytes
	in.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	in.mu.Lock()
	if len(in.seen) < in.max {
		in.seen[s] = s
	}
	in.mu.Unlock()
	return s
}
