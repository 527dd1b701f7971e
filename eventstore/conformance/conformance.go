// Package conformance is the one test suite of the event-store port. Every
// adapter runs it from its own tests:
//
//	conformance.Run(t, func(t testing.TB, o conformance.Options) eventstore.Store { ... })
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/eventstore"
)

// Options are what a test asks of the store it gets.
type Options struct {
	// CommitDelay, when set, must be applied inside every append, by the
	// adapter or by the storage under it (a test server), after the events
	// are positioned and before they are visible. It makes concurrent
	// appends commit out of order, which is what the stress test needs.
	CommitDelay func() time.Duration
}

// Factory returns a store over fresh, empty storage. It registers its own cleanup.
type Factory func(t testing.TB, o Options) eventstore.Store

// Run runs the suite. Subtests run in parallel; each gets a fresh store.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"AppendReadRoundTrip", testRoundTrip},
		{"ExpectedRevision", testExpectedRevision},
		{"IdempotentRetry", testIdempotentRetry},
		{"ReadStreamDirectionsAndBounds", testReadStream},
		{"ReadStreamsManyAtOnce", testReadStreams},
		{"ReadAll", testReadAll},
		{"SubscribeCatchUpThenLive", testSubscribe},
		{"SubscribeResume", testSubscribeResume},
		{"SubscribeStopsOnHandlerError", testSubscribeHandlerError},
		{"ConcurrentWritersTailingSubscriber", testConcurrentWriters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore)
		})
	}
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func event(typ string, n int) eventstore.EventData {
	data, _ := json.Marshal(map[string]int{"n": n})
	return eventstore.EventData{ID: uuid.New(), Type: typ, Data: data, Metadata: []byte(`{"actor":"test"}`)}
}

func events(n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = event("test.happened", i)
	}
	return out
}

func streamName(prefix string) string { return prefix + "-" + uuid.NewString()[:8] }

func mustAppend(t testing.TB, s eventstore.Store, stream string, exp eventstore.ExpectedRevision, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctxFor(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func testRoundTrip(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	stream := streamName("order")
	in := events(3)
	res := mustAppend(t, s, stream, eventstore.NoStream(), in...)
	if res.Revision != 2 {
		t.Fatalf("revision = %d; want 2", res.Revision)
	}
	got, err := s.ReadStream(ctx, stream, eventstore.Forwards, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events; want 3", len(got))
	}
	for i, e := range got {
		if e.ID != in[i].ID || e.Type != in[i].Type || e.Stream != stream || e.Revision != uint64(i) {
			t.Errorf("event %d = %+v; want id %s type %s rev %d", i, e, in[i].ID, in[i].Type, i)
		}
		assertJSONEqual(t, e.Data, in[i].Data)
		assertJSONEqual(t, e.Metadata, in[i].Metadata)
		if e.Created.IsZero() || time.Since(e.Created) > time.Minute {
			t.Errorf("event %d created = %v; want about now", i, e.Created)
		}
	}
	if got[2].Position != res.Position {
		t.Errorf("last position = %v; want append result %v", got[2].Position, res.Position)
	}
	if !got[0].Position.Less(got[1].Position) || !got[1].Position.Less(got[2].Position) {
		t.Errorf("positions not increasing: %v %v %v", got[0].Position, got[1].Position, got[2].Position)
	}
	p, err := eventstore.ParsePosition(res.Position.String())
	if err != nil || p != res.Position {
		t.Errorf("ParsePosition(%q) = %v, %v; want %v", res.Position.String(), p, err, res.Position)
	}
	head, err := s.Head(ctx)
	if err != nil || head != res.Position {
		t.Errorf("Head = %v, %v; want %v", head, err, res.Position)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if _, err := s.Append(ctx, stream, eventstore.Any()); !errors.Is(err, eventstore.ErrNoEvents) {
		t.Errorf("append of nothing: err = %v; want ErrNoEvents", err)
	}
}

func assertJSONEqual(t testing.TB, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("stored JSON %q: %v", got, err)
		return
	}
	_ = json.Unmarshal(want, &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("JSON = %s; want %s", gb, wb)
	}
}

func testExpectedRevision(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	cases := []struct {
		name     string
		existing int // events already in the stream
		expected eventstore.ExpectedRevision
		ok       bool
		actual   int64
	}{
		{"any on new stream", 0, eventstore.Any(), true, 0},
		{"any on existing", 2, eventstore.Any(), true, 0},
		{"no stream on new", 0, eventstore.NoStream(), true, 0},
		{"no stream on existing", 2, eventstore.NoStream(), false, 1},
		{"stream exists on new", 0, eventstore.StreamExists(), false, eventstore.NoRevision},
		{"stream exists on existing", 3, eventstore.StreamExists(), true, 0},
		{"exact match", 3, eventstore.Exact(2), true, 0},
		{"exact behind", 3, eventstore.Exact(1), false, 2},
		{"exact ahead", 3, eventstore.Exact(5), false, 2},
		{"exact on new stream", 0, eventstore.Exact(0), false, eventstore.NoRevision},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := streamName("exp")
			if tc.existing > 0 {
				mustAppend(t, s, stream, eventstore.NoStream(), events(tc.existing)...)
			}
			res, err := s.Append(ctxFor(t), stream, tc.expected, events(2)...)
			if tc.ok {
				if err != nil {
					t.Fatalf("append: %v; want success", err)
				}
				if want := uint64(tc.existing + 1); res.Revision != want {
					t.Errorf("revision = %d; want %d", res.Revision, want)
				}
				return
			}
			var wev *eventstore.WrongExpectedVersionError
			if !errors.As(err, &wev) {
				t.Fatalf("err = %v; want WrongExpectedVersionError", err)
			}
			if wev.Actual != tc.actual || wev.Stream != stream {
				t.Errorf("error = %+v; want actual %d on %s", wev, tc.actual, stream)
			}
			// Nothing was written.
			got, err := s.ReadStream(ctxFor(t), stream, eventstore.Forwards, 0, 100)
			if tc.existing == 0 {
				if !errors.Is(err, eventstore.ErrStreamNotFound) {
					t.Errorf("read after failed append: %v, %d events; want not found", err, len(got))
				}
			} else if len(got) != tc.existing {
				t.Errorf("stream has %d events after failed append; want %d", len(got), tc.existing)
			}
		})
	}
}

func testIdempotentRetry(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	stream := streamName("idem")
	mustAppend(t, s, stream, eventstore.NoStream(), events(1)...)
	batch := events(2)
	first := mustAppend(t, s, stream, eventstore.Exact(0), batch...)
	again, err := s.Append(ctx, stream, eventstore.Exact(0), batch...)
	if err != nil {
		t.Fatalf("retry: %v; want the original result", err)
	}
	if again != first {
		t.Errorf("retry result = %+v; want %+v", again, first)
	}
	got, err := s.ReadStream(ctx, stream, eventstore.Forwards, 0, 100)
	if err != nil || len(got) != 3 {
		t.Fatalf("stream after retry: %d events, %v; want 3", len(got), err)
	}
	all, err := s.ReadAll(ctx, eventstore.Start, 100)
	if err != nil || len(all) != 3 {
		t.Fatalf("log after retry: %d events, %v; want 3", len(all), err)
	}
}

func testReadStream(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	stream := streamName("read")
	mustAppend(t, s, stream, eventstore.NoStream(), events(10)...)
	mustAppend(t, s, streamName("other"), eventstore.NoStream(), events(3)...)
	cases := []struct {
		name  string
		dir   eventstore.Direction
		from  uint64
		count int
		want  []uint64
	}{
		{"forwards from start", eventstore.Forwards, 0, 3, []uint64{0, 1, 2}},
		{"forwards from middle", eventstore.Forwards, 3, 4, []uint64{3, 4, 5, 6}},
		{"forwards past the end", eventstore.Forwards, 8, 10, []uint64{8, 9}},
		{"forwards beyond", eventstore.Forwards, 20, 10, nil},
		{"backwards from end", eventstore.Backwards, eventstore.End, 3, []uint64{9, 8, 7}},
		{"backwards from middle", eventstore.Backwards, 2, 10, []uint64{2, 1, 0}},
		{"backwards from beyond", eventstore.Backwards, 50, 2, []uint64{9, 8}},
	}
	for _, tc := range cases {
		got, err := s.ReadStream(ctx, stream, tc.dir, tc.from, tc.count)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var revs []uint64
		for _, e := range got {
			revs = append(revs, e.Revision)
		}
		if !slices.Equal(revs, tc.want) {
			t.Errorf("%s: revisions %v; want %v", tc.name, revs, tc.want)
		}
	}
	for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
		if _, err := s.ReadStream(ctx, "missing-stream", dir, 0, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Errorf("read missing stream (dir %d): err = %v; want ErrStreamNotFound", dir, err)
		}
	}
}

// testReadStreams checks eventstore.ReadStreams, which uses the store's own
// many-stream read when it has one: each read answered as ReadStream
// would, in the order asked, a missing stream as empty.
func testReadStreams(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	a, b := streamName("many-a"), streamName("many-b")
	mustAppend(t, s, a, eventstore.NoStream(), events(10)...)
	mustAppend(t, s, b, eventstore.NoStream(), events(4)...)
	reads := []eventstore.StreamRead{
		{Stream: a, Dir: eventstore.Forwards, From: 3, Count: 4},
		{Stream: "missing-" + a, Dir: eventstore.Forwards, From: 0, Count: 10},
		{Stream: b, Dir: eventstore.Backwards, From: eventstore.End, Count: 3},
		{Stream: a, Dir: eventstore.Backwards, From: 2, Count: 10},
		{Stream: b, Dir: eventstore.Forwards, From: 20, Count: 10},
		{Stream: a, Dir: eventstore.Backwards, From: 50, Count: 2},
		{Stream: b, Dir: eventstore.Forwards, From: 0, Count: 0},
	}
	want := []struct {
		stream string
		revs   []uint64
	}{{a, []uint64{3, 4, 5, 6}}, {"", nil}, {b, []uint64{3, 2, 1}}, {a, []uint64{2, 1, 0}}, {"", nil}, {a, []uint64{9, 8}}, {"", nil}}
	got, err := eventstore.ReadStreams(ctx, s, reads)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(reads) {
		t.Fatalf("%d answers to %d reads", len(got), len(reads))
	}
	for i, evs := range got {
		var revs []uint64
		for _, e := range evs {
			revs = append(revs, e.Revision)
			if e.Stream != want[i].stream {
				t.Errorf("read %d: an event of stream %q; want %q", i, e.Stream, want[i].stream)
			}
		}
		if !slices.Equal(revs, want[i].revs) {
			t.Errorf("read %d (%+v): revisions %v; want %v", i, reads[i], revs, want[i].revs)
		}
	}
	one, err := s.ReadStream(ctx, a, eventstore.Forwards, 3, 1)
	if err != nil || len(one) != 1 {
		t.Fatalf("ReadStream: %d events, %v", len(one), err)
	}
	if e := got[0][0]; e.ID != one[0].ID || e.Position != one[0].Position || e.Type != one[0].Type ||
		string(e.Data) != string(one[0].Data) || string(e.Metadata) != string(one[0].Metadata) || !e.Created.Equal(one[0].Created) {
		t.Errorf("ReadStreams event %+v differs from ReadStream's %+v", e, one[0])
	}
}

func testReadAll(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	var want []uuid.UUID
	for i := range 5 {
		evs := events(i%3 + 1)
		for _, e := range evs {
			want = append(want, e.ID)
		}
		mustAppend(t, s, streamName("all"), eventstore.NoStream(), evs...)
	}
	got := readAllIDs(t, s, eventstore.Start, 4)
	if !slices.Equal(got, want) {
		t.Fatalf("ReadAll ids = %v; want %v", got, want)
	}
	first, err := s.ReadAll(ctx, eventstore.Start, 3)
	if err != nil || len(first) != 3 {
		t.Fatalf("ReadAll(count 3) = %d events, %v", len(first), err)
	}
	rest, err := s.ReadAll(ctx, first[2].Position, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != len(want)-3 || rest[0].ID != want[3] {
		t.Errorf("ReadAll after position is not exclusive: got %d events starting %v", len(rest), rest[0].ID)
	}
	tail, err := s.ReadAll(ctx, rest[len(rest)-1].Position, 10)
	if err != nil || len(tail) != 0 {
		t.Errorf("ReadAll past the head = %d events, %v; want none", len(tail), err)
	}
}

func readAllIDs(t testing.TB, s eventstore.Store, from eventstore.Position, batch int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for {
		evs, err := s.ReadAll(ctxFor(t), from, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return ids
		}
		for _, e := range evs {
			if !from.Less(e.Position) {
				t.Fatalf("position %v not after %v", e.Position, from)
			}
			from = e.Position
			ids = append(ids, e.ID)
		}
	}
}

// collector gathers a subscription's events and signals progress.
type collector struct {
	mu       sync.Mutex
	events   []eventstore.RecordedEvent
	caughtUp bool
	changed  chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, d eventstore.Delivery) error {
	c.mu.Lock()
	c.events = append(c.events, d.Events...)
	c.caughtUp = c.caughtUp || d.CaughtUp
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until cond holds on the collected state.
func (c *collector) waitFor(t testing.TB, what string, cond func(events []eventstore.RecordedEvent, caughtUp bool) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		ok := cond(c.events, c.caughtUp)
		n := len(c.events)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s (have %d events)", what, n)
		}
	}
}

func subscribe(t testing.TB, s eventstore.Store, from eventstore.Position, c *collector) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.SubscribeAll(ctx, from, c.handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("subscription did not stop after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func testSubscribe(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	stream := streamName("sub")
	before := events(5)
	mustAppend(t, s, stream, eventstore.NoStream(), before...)
	c := newCollector()
	stop := subscribe(t, s, eventstore.Start, c)
	c.waitFor(t, "catch-up", func(evs []eventstore.RecordedEvent, caughtUp bool) bool {
		return caughtUp && len(evs) == 5
	})
	live := events(3)
	for i, e := range live {
		mustAppend(t, s, stream, eventstore.Exact(uint64(4+i)), e)
	}
	c.waitFor(t, "live events", func(evs []eventstore.RecordedEvent, _ bool) bool { return len(evs) >= 8 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("SubscribeAll after cancel returned %v; want context.Canceled", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	want := append(before, live...)
	if len(c.events) != len(want) {
		t.Fatalf("got %d events; want %d", len(c.events), len(want))
	}
	for i, e := range c.events {
		if e.ID != want[i].ID {
			t.Errorf("event %d = %s; want %s", i, e.ID, want[i].ID)
		}
	}
}

func testSubscribeResume(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	evs := events(6)
	for _, e := range evs {
		mustAppend(t, s, streamName("resume"), eventstore.NoStream(), e)
	}
	all, err := s.ReadAll(ctxFor(t), eventstore.Start, 100)
	if err != nil || len(all) != 6 {
		t.Fatalf("ReadAll: %d, %v", len(all), err)
	}
	c := newCollector()
	subscribe(t, s, all[2].Position, c)
	c.waitFor(t, "resume", func(evs []eventstore.RecordedEvent, caughtUp bool) bool { return caughtUp && len(evs) >= 3 })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events) != 3 || c.events[0].ID != evs[3].ID || c.events[2].ID != evs[5].ID {
		t.Errorf("resumed with %d events starting %v; want the 3 after position %v", len(c.events), c.events[0].ID, all[2].Position)
	}
}

func testSubscribeHandlerError(t *testing.T, newStore Factory) {
	s := newStore(t, Options{})
	mustAppend(t, s, streamName("err"), eventstore.NoStream(), events(2)...)
	boom := errors.New("boom")
	err := s.SubscribeAll(ctxFor(t), eventstore.Start, func(context.Context, eventstore.Delivery) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("SubscribeAll = %v; want the handler's error", err)
	}
}

// testConcurrentWriters is the gap test: writers whose transactions commit
// out of order, a subscriber tailing the log meanwhile. The subscriber must
// see exactly the committed set, each event once, and in the same order as a
// fresh read of the whole log afterwards.
func testConcurrentWriters(t *testing.T, newStore Factory) {
	rounds, writers, perWriter := 8, 16, 12
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		s := newStore(t, Options{CommitDelay: func() time.Duration {
			return time.Duration(rand.IntN(3000)) * time.Microsecond
		}})
		c := newCollector()
		subscribe(t, s, eventstore.Start, c)

		var mu sync.Mutex
		written := map[uuid.UUID]bool{}
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					e := event("stress.written", i)
					stream := fmt.Sprintf("stress-%d", rand.IntN(writers/2))
					if w%4 == 0 {
						stream = fmt.Sprintf("own-%d-%d", w, i) // also many new streams
					}
					if _, err := s.Append(context.Background(), stream, eventstore.Any(), e); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					written[e.ID] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: writer: %v", round, err)
		}
		total := writers * perWriter
		c.waitFor(t, "all written events", func(evs []eventstore.RecordedEvent, _ bool) bool { return len(evs) >= total })

		c.mu.Lock()
		seen := map[uuid.UUID]int{}
		var order []uuid.UUID
		for i, e := range c.events {
			seen[e.ID]++
			order = append(order, e.ID)
			if i > 0 && !c.events[i-1].Position.Less(e.Position) {
				t.Errorf("round %d: position %v delivered after %v", round, e.Position, c.events[i-1].Position)
			}
		}
		c.mu.Unlock()
		for id, n := range seen {
			if n != 1 || !written[id] {
				t.Errorf("round %d: event %s delivered %d times (written: %v)", round, id, n, written[id])
			}
		}
		if len(seen) != len(written) {
			t.Errorf("round %d: subscriber saw %d distinct events; %d were written", round, len(seen), len(written))
		}
		if fresh := readAllIDs(t, s, eventstore.Start, 37); !slices.Equal(fresh, order) {
			t.Errorf("round %d: subscriber order differs from a fresh read of the log", round)
		}
		if t.Failed() {
			return
		}
	}
}
