// Package eventstore holds the neutral types of the event-store port: events,
// positions in the global log, expected revisions and the errors every adapter
// returns. The adapters live in the subpackages postgres and esdb; the
// conformance subpackage is the one test suite they all pass.
package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Position is a place in the global log. Positions are totally ordered; the
// zero Position lies before the first event.
//
// The two halves mean what the adapter says they mean (the PostgreSQL store
// uses the committing transaction id and the row sequence; EventStoreDB its
// commit and prepare positions). Callers only compare and serialise them.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Start is the position before the first event of the log.
var Start = Position{}

// IsZero reports whether p is the start of the log.
func (p Position) IsZero() bool { return p == Start }

// Compare returns -1, 0 or +1 as p is before, equal to, or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Commit < q.Commit:
		return -1
	case p.Commit > q.Commit:
		return 1
	case p.Prepare < q.Prepare:
		return -1
	case p.Prepare > q.Prepare:
		return 1
	}
	return 0
}

// Less reports whether p is before q.
func (p Position) Less(q Position) bool { return p.Compare(q) < 0 }

// String is the opaque form handed to clients; ParsePosition reads it back.
func (p Position) String() string {
	return strconv.FormatUint(p.Commit, 36) + "-" + strconv.FormatUint(p.Prepare, 36)
}

// ErrInvalidPosition is returned by ParsePosition for text it did not write.
var ErrInvalidPosition = errors.New("invalid position")

// ParsePosition reads the opaque form written by Position.String.
func ParsePosition(s string) (Position, error) {
	c, p, ok := strings.Cut(s, "-")
	if !ok {
		return Position{}, ErrInvalidPosition
	}
	commit, err1 := strconv.ParseUint(c, 36, 64)
	prepare, err2 := strconv.ParseUint(p, 36, 64)
	if err1 != nil || err2 != nil {
		return Position{}, ErrInvalidPosition
	}
	return Position{Commit: commit, Prepare: prepare}, nil
}

// ExpectedRevision is the optimistic-concurrency condition of an append.
type ExpectedRevision struct {
	kind     expectKind
	revision uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Any appends whatever the stream's state.
func Any() ExpectedRevision { return ExpectedRevision{kind: expectAny} }

// NoStream appends only when the stream has no events yet.
func NoStream() ExpectedRevision { return ExpectedRevision{kind: expectNoStream} }

// StreamExists appends only when the stream has at least one event.
func StreamExists() ExpectedRevision { return ExpectedRevision{kind: expectStreamExists} }

// Exact appends only when the stream's last event has revision r.
func Exact(r uint64) ExpectedRevision { return ExpectedRevision{kind: expectExact, revision: r} }

// IsAny, IsNoStream, IsStreamExists report the kind; Revision reports an exact one.
func (e ExpectedRevision) IsAny() bool          { return e.kind == expectAny }
func (e ExpectedRevision) IsNoStream() bool     { return e.kind == expectNoStream }
func (e ExpectedRevision) IsStreamExists() bool { return e.kind == expectStreamExists }

// Revision returns the exact revision expected and whether e is an exact expectation.
func (e ExpectedRevision) Revision() (uint64, bool) { return e.revision, e.kind == expectExact }

func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return "revision " + strconv.FormatUint(e.revision, 10)
	}
	return "any"
}

// NoRevision is the "actual revision" of a stream that has no events.
const NoRevision int64 = -1

// WrongExpectedVersionError is returned by Append when the stream is not in
// the expected state. Actual is the stream's current last revision, or
// NoRevision when the stream does not exist.
type WrongExpectedVersionError struct {
	Stream   string
	Expected ExpectedRevision
	Actual   int64
}

func (e *WrongExpectedVersionError) Error() string {
	actual := "no stream"
	if e.Actual != NoRevision {
		actual = "revision " + strconv.FormatInt(e.Actual, 10)
	}
	return fmt.Sprintf("append to %s: expected %s, stream is at %s", e.Stream, e.Expected, actual)
}

var (
	// ErrStreamNotFound is returned by ReadStream for a stream with no events.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrNoEvents is returned by Append when given no events.
	ErrNoEvents = errors.New("append needs at least one event")
	// ErrDuplicateEventID is returned by Append when an event id is already
	// used by a different event (another stream, or a partly matching retry).
	// Adapters over stores that do not track event ids across streams
	// (EventStoreDB) never return it; a partly matching retry is then a
	// *WrongExpectedVersionError.
	ErrDuplicateEventID = errors.New("event id already used by another append")
	// ErrUnavailable wraps failures to reach the store.
	ErrUnavailable = errors.New("event store unavailable")
)

// EventData is an event to append. Data and Metadata are JSON documents.
type EventData struct {
	ID       uuid.UUID
	Type     string
	Data     []byte
	Metadata []byte
}

// RecordedEvent is an event as stored in the log.
type RecordedEvent struct {
	ID       uuid.UUID
	Stream   string
	Revision uint64
	Position Position
	Type     string
	Data     []byte
	Metadata []byte
	Created  time.Time
}

// AppendResult tells where the last event of an append landed.
type AppendResult struct {
	// Revision is the stream revision of the last appended event.
	Revision uint64
	// Position is the log position of the last appended event.
	Position Position
}

// Direction of a stream read.
type Direction uint8

const (
	Forwards Direction = iota
	Backwards
)

// End, as the from revision of a backwards read, starts at the stream's last event.
const End = ^uint64(0)

// Delivery is one step of a subscription: a batch of events in log order,
// and whether the subscriber has reached the head of the log with it.
// A delivery may carry no events when it only reports CaughtUp.
type Delivery struct {
	Events   []RecordedEvent
	CaughtUp bool
}

// Store is the event-store port. Every adapter passes the conformance suite.
type Store interface {
	// Append writes events to stream if it is in the expected state, all or
	// nothing. A mismatch returns *WrongExpectedVersionError. Appending again
	// events whose ids are already in the stream (a retry) appends nothing and
	// returns the original result.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...EventData) (AppendResult, error)
	// ReadStream reads up to count events of stream starting at revision from
	// (inclusive) in the given direction. A stream with no events gives
	// ErrStreamNotFound.
	ReadStream(ctx context.Context, stream string, dir Direction, from uint64, count int) ([]RecordedEvent, error)
	// ReadAll reads up to count events of the whole log after from (exclusive),
	// forwards. It never skips an event that a later call would return.
	ReadAll(ctx context.Context, from Position, count int) ([]RecordedEvent, error)
	// SubscribeAll delivers every event after from (exclusive) to handle, in
	// log order, first catching up, then live. It blocks until ctx ends
	// (returning ctx.Err()), handle returns an error (returned as is), or the
	// store fails beyond recovery.
	SubscribeAll(ctx context.Context, from Position, handle func(context.Context, Delivery) error) error
	// Head returns the position of the last event of the log (Start when empty).
	Head(ctx context.Context) (Position, error)
	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
}

// StreamRead is one stream's read of a ReadStreams call: up to Count events
// of Stream from revision From (inclusive) in direction Dir.
type StreamRead struct {
	Stream string
	Dir    Direction
	From   uint64
	Count  int
}

// StreamsReader is implemented by stores that read several streams in one
// round trip. Callers use ReadStreams, which falls back to one ReadStream a
// stream for stores that do not.
type StreamsReader interface {
	// ReadStreams answers each of reads as ReadStream would, in the same
	// order; a stream with no events reads as empty instead of failing.
	ReadStreams(ctx context.Context, reads []StreamRead) ([][]RecordedEvent, error)
}

// ReadStreams answers each of reads as s.ReadStream would, a stream with no
// events as empty: in one call when s is a StreamsReader, otherwise with
// up to eight ReadStream calls at a time.
func ReadStreams(ctx context.Context, s Store, reads []StreamRead) ([][]RecordedEvent, error) {
	if m, ok := s.(StreamsReader); ok {
		return m.ReadStreams(ctx, reads)
	}
	out := make([][]RecordedEvent, len(reads))
	errs := make([]error, len(reads))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, rd := range reads {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			evs, err := s.ReadStream(ctx, rd.Stream, rd.Dir, rd.From, rd.Count)
			if errors.Is(err, ErrStreamNotFound) {
				evs, err = nil, nil
			}
			out[i], errs[i] = evs, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
