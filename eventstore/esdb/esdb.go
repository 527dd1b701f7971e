// Package esdb is the EventStoreDB adapter of the event-store port, on the
// EventStore-Client-Go v4 client.
//
// Positions are EventStoreDB's own commit and prepare positions. The
// server's $all is shared with its own subsystems: the adapter skips events
// whose type or stream starts with "$" wherever it reads $all (ReadAll,
// SubscribeAll, Head), so callers only see their own events.
//
// What the port asks and EventStoreDB does differently:
//   - Idempotent appends are the server's: appending again the same event
//     ids at the same expected revision returns the original result. The
//     server does not keep event ids unique across streams, so Append never
//     returns eventstore.ErrDuplicateEventID; a retry that only partly
//     matches is answered as a wrong expected version.
//   - Reads of $all are inclusive of their starting position on the wire;
//     ReadAll drops that event to give the port's exclusive semantics.
//
// The library client has sharp edges the store works around: it closes
// itself for good after a failed node discovery (the store builds a new
// one), its error type needs errors.As, its wrong-expected-version error
// carries the stream's revision only in its message, and it reports a
// missing stream from the first Recv of a read rather than from the read.
package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/evchat/evchat/eventstore"
)

var _ eventstore.Store = (*Store)(nil)

// ErrClosed is returned by the operations of a closed Store. It wraps
// eventstore.ErrUnavailable.
var ErrClosed = fmt.Errorf("esdb store closed: %w", eventstore.ErrUnavailable)

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// BatchSize is the most events one subscription delivery carries. Default 512.
	BatchSize int
	// MaxRetryDelay bounds the backoff between resubscriptions. Default 5s.
	MaxRetryDelay time.Duration
	// CallTimeout bounds one append or read, the client's search for a
	// server included: past it the call fails with an error wrapping
	// eventstore.ErrUnavailable. Default 10s.
	CallTimeout time.Duration
	// StreamPrefix is for tests against a shared server: every stream name
	// is prefixed with it on the way in and stripped on the way out, and
	// ReadAll, SubscribeAll and Head only see events of prefixed streams, so
	// stores with different prefixes on one server do not see one another.
	// The filtering is done by the adapter and reads all of $all.
	StreamPrefix string
}

// Store is the EventStoreDB event store. Create it with New; Close it.
type Store struct {
	cfg  *kurrent.Configuration
	log  *slog.Logger
	opts Options

	connMu sync.Mutex
	conn   *conn

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	mu     sync.RWMutex // guards closed against wg.Add
	closed bool
	wg     sync.WaitGroup // running operations, and library calls their callers left

	closeWait time.Duration // how long Close waits for them
}

// closeWait bounds how long Close waits for running operations.
const closeWait = 5 * time.Second

// pingStream is the stream Ping reads; it need not exist.
const pingStream = "evchat-ping"

// New connects to the EventStoreDB server at url (a connection string such
// as esdb://localhost:2113?tls=false) and checks that it answers. It
// returns an error wrapping eventstore.ErrUnavailable when it does not, and
// a plain error for an invalid url.
func New(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	if opts.MaxRetryDelay <= 0 {
		opts.MaxRetryDelay = 5 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	cfg, err := kurrent.ParseConnectionString(url)
	if err != nil {
		return nil, fmt.Errorf("esdb: connection string: %w", err)
	}
	cfg.Logger = libraryLogger(opts.Logger)
	c, err := newConn(cfg)
	if err != nil {
		return nil, fmt.Errorf("esdb: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, log: opts.Logger, opts: opts, conn: c, ctx: sctx, cancel: cancel, closeWait: closeWait}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close cancels the store's running operations and subscriptions, waits
// for them, and for library calls their callers stopped waiting for (a few
// seconds at most), and closes the client. Later calls
// return ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.closeWait):
		// An operation is stuck inside the library (a call its caller
		// gave up on may be searching for a server); closing the client
		// under it is a data race and could panic it, so leave it be.
		return errors.New("esdb: close: operations still running in the EventStoreDB client")
	}
	return s.current().client.Close()
}

// Append implements eventstore.Store. A mismatch returns
// *eventstore.WrongExpectedVersionError with the stream's revision (or
// eventstore.NoRevision); appending again the same events at the same
// expected revision returns the original result; no events returns
// eventstore.ErrNoEvents; a server that cannot be reached gives an error
// wrapping eventstore.ErrUnavailable.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) == 0 {
		return eventstore.AppendResult{}, eventstore.ErrNoEvents
	}
	name := s.opts.StreamPrefix + stream
	data := make([]kurrent.EventData, len(events))
	for i, e := range events {
		id := e.ID
		if id == uuid.Nil {
			id = uuid.New()
		}
		data[i] = kurrent.EventData{
			EventID: id, EventType: e.Type, ContentType: kurrent.ContentTypeJson,
			Data: jsonOrEmpty(e.Data), Metadata: jsonOrEmpty(e.Metadata),
		}
	}
	opts := kurrent.AppendToStreamOptions{ExpectedRevision: toExpected(expected)}

	var wr *kurrent.WriteResult
	err := s.do(ctx, func(ctx context.Context, c *kurrent.Client) error {
		var err error
		wr, err = c.AppendToStream(ctx, name, opts, data...)
		return err
	})
	if code, ok := errorCode(err); ok && code == kurrent.ErrorCodeWrongExpectedVersion {
		actual, ok := actualRevision(err)
		if !ok {
			actual, err = s.lastRevision(ctx, name)
			if err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("append to %s: wrong expected version; reading the stream's revision: %w", stream, err)
			}
		}
		return eventstore.AppendResult{}, &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: actual}
	}
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, s.classify(ctx, err))
	}

	res := eventstore.AppendResult{
		Revision: wr.NextExpectedVersion,
		Position: eventstore.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition},
	}
	if res.Position.IsZero() {
		// Older servers answer an idempotent retry without a position:
		// the last event of the original append has it.
		evs, err := s.ReadStream(ctx, stream, eventstore.Forwards, res.Revision, 1)
		if err == nil && len(evs) == 0 {
			err = errors.New("event not found")
		}
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: reading the position of revision %d: %w", stream, res.Revision, err)
		}
		res.Position = evs[0].Position
	}
	return res, nil
}

func toExpected(e eventstore.ExpectedRevision) kurrent.ExpectedRevision {
	switch {
	case e.IsNoStream():
		return kurrent.NoStream{}
	case e.IsStreamExists():
		return kurrent.StreamExists{}
	}
	if r, ok := e.Revision(); ok {
		return kurrent.Revision(r)
	}
	return kurrent.Any{}
}

func jsonOrEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// lastRevision returns the revision of the last event of the stream named
// name (prefixed already), or eventstore.NoRevision.
func (s *Store) lastRevision(ctx context.Context, name string) (int64, error) {
	evs, err := s.readStream(ctx, name, kurrent.ReadStreamOptions{Direction: kurrent.Backwards, From: kurrent.End{}}, 1)
	if code, ok := errorCode(err); ok && code == kurrent.ErrorCodeResourceNotFound {
		return eventstore.NoRevision, nil
	}
	if err != nil {
		return 0, s.classify(ctx, err)
	}
	if len(evs) == 0 {
		return eventstore.NoRevision, nil
	}
	return int64(evs[0].EventNumber), nil
}

// ReadStream implements eventstore.Store. A stream with no events gives
// eventstore.ErrStreamNotFound; a server that cannot be reached gives an
// error wrapping eventstore.ErrUnavailable.
func (s *Store) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	if count <= 0 {
		return nil, nil
	}
	opts := kurrent.ReadStreamOptions{Direction: kurrent.Forwards, From: kurrent.Revision(min(from, maxRevision))}
	if dir == eventstore.Backwards {
		opts.Direction = kurrent.Backwards
		if from > maxRevision {
			opts.From = kurrent.End{}
		}
	}
	recs, err := s.readStream(ctx, s.opts.StreamPrefix+stream, opts, uint64(count))
	if code, ok := errorCode(err); ok && code == kurrent.ErrorCodeResourceNotFound {
		return nil, eventstore.ErrStreamNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, s.classify(ctx, err))
	}
	out := make([]eventstore.RecordedEvent, len(recs))
	for i, r := range recs {
		out[i] = s.recorded(r)
	}
	return out, nil
}

// maxRevision keeps revisions where the server's signed arithmetic is safe.
const maxRevision = 1 << 62

// readStream reads a stream (its full name) with the library. Stream not
// found comes back as the library's ResourceNotFound error: the library
// reports it from the first Recv, not from ReadStream.
func (s *Store) readStream(ctx context.Context, name string, opts kurrent.ReadStreamOptions, count uint64) ([]*kurrent.RecordedEvent, error) {
	var out []*kurrent.RecordedEvent
	err := s.do(ctx, func(ctx context.Context, c *kurrent.Client) error {
		out = out[:0]
		rs, err := c.ReadStream(ctx, name, opts, count)
		if err != nil {
			return err
		}
		return drain(rs, func(e *kurrent.RecordedEvent) { out = append(out, e) })
	})
	if err != nil {
		// out is not read: a call abandoned at ctx's end may still be
		// filling it in the background (see call).
		return nil, err
	}
	return out, nil
}

// readAll reads count events of $all, system events included.
func (s *Store) readAll(ctx context.Context, opts kurrent.ReadAllOptions, count uint64) ([]*kurrent.RecordedEvent, error) {
	var out []*kurrent.RecordedEvent
	err := s.do(ctx, func(ctx context.Context, c *kurrent.Client) error {
		out = out[:0]
		rs, err := c.ReadAll(ctx, opts, count)
		if err != nil {
			return err
		}
		return drain(rs, func(e *kurrent.RecordedEvent) { out = append(out, e) })
	})
	if err != nil {
		// out is not read: a call abandoned at ctx's end may still be
		// filling it in the background (see call).
		return nil, err
	}
	return out, nil
}

func drain(rs *kurrent.ReadStream, add func(*kurrent.RecordedEvent)) error {
	defer rs.Close()
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if e := ev.OriginalEvent(); e != nil {
			add(e)
		}
	}
}

// visible reports whether an event of $all is one of ours: not a system
// event, and in a prefixed stream when the store has a prefix.
func (s *Store) visible(e *kurrent.RecordedEvent) bool {
	return !strings.HasPrefix(e.EventType, "$") && !strings.HasPrefix(e.StreamID, "$") &&
		strings.HasPrefix(e.StreamID, s.opts.StreamPrefix)
}

func (s *Store) recorded(e *kurrent.RecordedEvent) eventstore.RecordedEvent {
	return eventstore.RecordedEvent{
		ID:       e.EventID,
		Stream:   strings.TrimPrefix(e.StreamID, s.opts.StreamPrefix),
		Revision: e.EventNumber,
		Position: position(e.Position),
		Type:     e.EventType,
		Data:     e.Data,
		Metadata: e.UserMetadata,
		Created:  e.CreatedDate,
	}
}

func position(p kurrent.Position) eventstore.Position {
	return eventstore.Position{Commit: p.Commit, Prepare: p.Prepare}
}

func allPosition(p eventstore.Position) kurrent.AllPosition {
	if p.IsZero() {
		return kurrent.Start{}
	}
	return kurrent.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// ReadAll implements eventstore.Store. The server's read is inclusive of
// from, and system events are skipped, so it reads in pages until it has
// count events or reaches the head. A server that cannot be reached gives
// an error wrapping eventstore.ErrUnavailable.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	if count <= 0 {
		return nil, nil
	}
	var out []eventstore.RecordedEvent
	cursor := from
	for len(out) < count {
		want := count - len(out)
		if !cursor.IsZero() {
			want++ // the event at cursor comes back
		}
		if s.opts.StreamPrefix != "" {
			want = max(want, 256) // most of a shared $all is someone else's
		}
		page, err := s.readAll(ctx, kurrent.ReadAllOptions{Direction: kurrent.Forwards, From: allPosition(cursor)}, uint64(want))
		if err != nil {
			return nil, fmt.Errorf("read all: %w", s.classify(ctx, err))
		}
		advanced := false
		for _, e := range page {
			p := position(e.Position)
			if !cursor.Less(p) {
				continue
			}
			cursor, advanced = p, true
			if s.visible(e) {
				out = append(out, s.recorded(e))
				if len(out) == count {
					break
				}
			}
		}
		if len(page) < want {
			break // the head
		}
		if !advanced {
			return nil, fmt.Errorf("read all: the server answered a full page without an event after %v", cursor)
		}
	}
	return out, nil
}

// Head implements eventstore.Store: the position of the last event that is
// not a system event, or eventstore.Start. A server that cannot be reached
// gives an error wrapping eventstore.ErrUnavailable.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	page := uint64(16)
	if s.opts.StreamPrefix != "" {
		page = 256
	}
	var from kurrent.AllPosition = kurrent.End{}
	for {
		evs, err := s.readAll(ctx, kurrent.ReadAllOptions{Direction: kurrent.Backwards, From: from}, page)
		if err != nil {
			return eventstore.Position{}, fmt.Errorf("head: %w", s.classify(ctx, err))
		}
		for _, e := range evs {
			if s.visible(e) {
				return position(e.Position), nil
			}
		}
		if uint64(len(evs)) < page {
			return eventstore.Start, nil
		}
		from = evs[len(evs)-1].Position // backwards reads exclude their start
	}
}

// rawHead returns the position of the last event of $all, system events
// included, or eventstore.Start.
func (s *Store) rawHead(ctx context.Context) (eventstore.Position, error) {
	evs, err := s.readAll(ctx, kurrent.ReadAllOptions{Direction: kurrent.Backwards, From: kurrent.End{}}, 1)
	if err != nil || len(evs) == 0 {
		return eventstore.Start, err
	}
	return position(evs[0].Position), nil
}

// Ping implements eventstore.Store with a read of one event of a stream
// that need not exist. A server that cannot be reached gives an error
// wrapping eventstore.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.readStream(ctx, s.opts.StreamPrefix+pingStream, kurrent.ReadStreamOptions{Direction: kurrent.Backwards, From: kurrent.End{}}, 1)
	if code, ok := errorCode(err); ok && code == kurrent.ErrorCodeResourceNotFound {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("ping: %w", s.classify(ctx, err))
	}
	return nil
}
