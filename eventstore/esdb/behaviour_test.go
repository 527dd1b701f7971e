package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/esdb"
	"github.com/evchat/evchat/eventstore/esdbtest"
)

func ev(typ string) eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: typ, Data: []byte(`{"n":1}`)}
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t testing.TB, s eventstore.Store, stream string, exp eventstore.ExpectedRevision, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctxFor(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func TestErrorClassification(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	s := connect(t, srv.URL(), esdb.Options{})
	ctx := ctxFor(t)
	mustAppend(t, s, "cls", eventstore.NoStream(), ev("a"), ev("b"))

	cases := []struct {
		name   string
		stream string
		exp    eventstore.ExpectedRevision
		actual int64
	}{
		{"exact ahead", "cls", eventstore.Exact(7), 1},
		{"no stream on existing", "cls", eventstore.NoStream(), 1},
		{"exact on missing", "cls-missing", eventstore.Exact(0), eventstore.NoRevision},
		{"stream exists on missing", "cls-missing", eventstore.StreamExists(), eventstore.NoRevision},
	}
	for _, tc := range cases {
		_, err := s.Append(ctx, tc.stream, tc.exp, ev("c"))
		var wev *eventstore.WrongExpectedVersionError
		if !errors.As(err, &wev) {
			t.Errorf("%s: err = %v; want *WrongExpectedVersionError", tc.name, err)
			continue
		}
		if wev.Actual != tc.actual || wev.Stream != tc.stream || wev.Expected != tc.exp {
			t.Errorf("%s: error = %+v; want actual %d", tc.name, wev, tc.actual)
		}
		if errors.Is(err, eventstore.ErrUnavailable) {
			t.Errorf("%s: a server's answer classified as unavailable: %v", tc.name, err)
		}
	}

	for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
		for _, from := range []uint64{0, 5, eventstore.End} {
			_, err := s.ReadStream(ctx, "nope", dir, from, 10)
			if !errors.Is(err, eventstore.ErrStreamNotFound) {
				t.Errorf("read missing stream (dir %d, from %d): %v; want ErrStreamNotFound", dir, from, err)
			}
		}
	}
	if _, err := s.Append(ctx, "cls", eventstore.Any()); !errors.Is(err, eventstore.ErrNoEvents) {
		t.Errorf("empty append: %v; want ErrNoEvents", err)
	}
	// An existing stream read past its end is empty, not missing.
	if evs, err := s.ReadStream(ctx, "cls", eventstore.Forwards, 9, 10); err != nil || len(evs) != 0 {
		t.Errorf("read past the end = %d events, %v; want none, no error", len(evs), err)
	}
}

func TestUnavailable(t *testing.T) {
	// Nothing listens on a port just released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx := ctxFor(t)
	if _, err := esdb.New(ctx, "esdb://"+addr+"?tls=false&maxDiscoverAttempts=1&discoveryInterval=10", esdb.Options{Logger: quiet()}); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Errorf("New on a closed port: %v; want ErrUnavailable", err)
	}
	if _, err := esdb.New(ctx, "http://nope", esdb.Options{Logger: quiet()}); err == nil || errors.Is(err, eventstore.ErrUnavailable) {
		t.Errorf("New with a bad url: %v; want a plain error", err)
	}

	srv := esdbtest.Start(t, esdbtest.Options{})
	s := connect(t, srv.URL()+"&maxDiscoverAttempts=1&discoveryInterval=10", esdb.Options{})
	mustAppend(t, s, "u", eventstore.NoStream(), ev("a"))
	srv.Stop()
	ops := map[string]func() error{
		"append": func() error { _, err := s.Append(ctx, "u", eventstore.Any(), ev("b")); return err },
		"read":   func() error { _, err := s.ReadStream(ctx, "u", eventstore.Forwards, 0, 1); return err },
		"all":    func() error { _, err := s.ReadAll(ctx, eventstore.Start, 1); return err },
		"head":   func() error { _, err := s.Head(ctx); return err },
		"ping":   func() error { return s.Ping(ctx) },
	}
	for round := range 2 { // the second round meets a client that closed itself
		for name, op := range ops {
			if err := op(); !errors.Is(err, eventstore.ErrUnavailable) {
				t.Errorf("round %d: %s with the server down: %v; want ErrUnavailable", round, name, err)
			}
		}
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping after the server is back: %v", err)
	}
}

func TestClosedStore(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	s, err := esdb.New(ctxFor(t), srv.URL(), esdb.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	done := make(chan error, 1)
	go func() { done <- s.SubscribeAll(context.Background(), eventstore.Start, c.handle) }()
	c.waitFor(t, "caught up", func(_ []eventstore.RecordedEvent, caughtUp bool) bool { return caughtUp })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, esdb.ErrClosed) {
		t.Errorf("subscription on Close returned %v; want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = s.Append(ctxFor(t), "x", eventstore.Any(), ev("a"))
	if !errors.Is(err, esdb.ErrClosed) || !errors.Is(err, eventstore.ErrUnavailable) {
		t.Errorf("append after Close: %v; want ErrClosed wrapping ErrUnavailable", err)
	}
}

// TestSystemEventsAreSkipped interleaves $-prefixed system events with
// ours: ReadAll must read past them to fill its count, Head must look past
// trailing ones, and subscriptions must not deliver them.
func TestSystemEventsAreSkipped(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	s := connect(t, srv.URL(), esdb.Options{})
	var want []uuid.UUID
	for i := range 6 {
		e := ev("user.did")
		want = append(want, e.ID)
		mustAppend(t, s, fmt.Sprintf("sys-%d", i), eventstore.NoStream(), e)
		for j := range i % 3 {
			srv.AppendSystemEvent(fmt.Sprintf("$stats-%d-%d", i, j), "$statsCollected")
		}
		srv.AppendSystemEvent(fmt.Sprintf("$$sys-%d", i), "$metadata")
	}
	ctx := ctxFor(t)
	got, err := s.ReadAll(ctx, eventstore.Start, 4)
	if err != nil || len(got) != 4 {
		t.Fatalf("ReadAll(4) = %d events, %v; want 4", len(got), err)
	}
	rest, err := s.ReadAll(ctx, got[3].Position, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, e := range append(got, rest...) {
		ids = append(ids, e.ID)
		if strings.HasPrefix(e.Type, "$") || strings.HasPrefix(e.Stream, "$") {
			t.Errorf("system event %s in %s read", e.Type, e.Stream)
		}
	}
	if !slices.Equal(ids, want) {
		t.Errorf("ReadAll ids = %v; want %v", ids, want)
	}
	head, err := s.Head(ctx)
	if err != nil || head != rest[len(rest)-1].Position {
		t.Errorf("Head = %v, %v; want %v (the last user event)", head, err, rest[len(rest)-1].Position)
	}

	c := newCollector()
	subscribe(t, s, eventstore.Start, c)
	c.waitFor(t, "catch-up", func(evs []eventstore.RecordedEvent, caughtUp bool) bool { return caughtUp && len(evs) == len(want) })
	srv.AppendSystemEvent("$settings", "$settings")
	last := ev("user.did")
	mustAppend(t, s, "sys-live", eventstore.NoStream(), last)
	c.waitFor(t, "live event", func(evs []eventstore.RecordedEvent, _ bool) bool { return len(evs) == len(want)+1 })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.events[len(want)].ID != last.ID {
		t.Errorf("live event = %v; want %v", c.events[len(want)].ID, last.ID)
	}
}

func TestEmptyLog(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{SystemEvents: -1})
	s := connect(t, srv.URL(), esdb.Options{})
	ctx := ctxFor(t)
	if head, err := s.Head(ctx); err != nil || head != eventstore.Start {
		t.Errorf("Head of an empty log = %v, %v; want Start", head, err)
	}
	if evs, err := s.ReadAll(ctx, eventstore.Start, 10); err != nil || len(evs) != 0 {
		t.Errorf("ReadAll of an empty log = %d, %v", len(evs), err)
	}
	c := newCollector()
	subscribe(t, s, eventstore.Start, c)
	c.waitFor(t, "caught up on nothing", func(evs []eventstore.RecordedEvent, caughtUp bool) bool { return caughtUp })
}

// TestCaughtUpWithoutServerMessage: servers before 23.10 never say
// caught_up; the subscription must still report it.
func TestCaughtUpWithoutServerMessage(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{NoCaughtUp: true})
	s := connect(t, srv.URL(), esdb.Options{BatchSize: 2})
	for i := range 5 {
		mustAppend(t, s, fmt.Sprintf("old-%d", i), eventstore.NoStream(), ev("a"))
	}
	c := newCollector()
	subscribe(t, s, eventstore.Start, c)
	c.waitFor(t, "caught up", func(evs []eventstore.RecordedEvent, caughtUp bool) bool { return caughtUp })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events) != 5 {
		t.Errorf("caught up with %d events; want 5", len(c.events))
	}
	for i, d := range c.deliveries {
		if len(d.Events) > 2 {
			t.Errorf("delivery %d has %d events; batch size is 2", i, len(d.Events))
		}
	}
}

// TestIdempotentRetryWithoutPosition: older servers answer an idempotent
// append without a position; the result must still be the original one.
func TestIdempotentRetryWithoutPosition(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{NoIdempotentPosition: true})
	s := connect(t, srv.URL(), esdb.Options{})
	mustAppend(t, s, "idem", eventstore.NoStream(), ev("a"))
	batch := []eventstore.EventData{ev("b"), ev("c")}
	first := mustAppend(t, s, "idem", eventstore.Exact(0), batch...)
	mustAppend(t, s, "idem", eventstore.Exact(2), ev("d"))
	for _, exp := range []eventstore.ExpectedRevision{eventstore.Exact(0), eventstore.Any()} {
		again := mustAppend(t, s, "idem", exp, batch...)
		if again != first {
			t.Errorf("retry (%s) = %+v; want %+v", exp, again, first)
		}
	}
	// A retry that only partly matches is a conflict, as the server says.
	_, err := s.Append(ctxFor(t), "idem", eventstore.Exact(0), batch[0], ev("e"))
	var wev *eventstore.WrongExpectedVersionError
	if !errors.As(err, &wev) || wev.Actual != 3 {
		t.Errorf("partial retry: %v; want wrong expected version at 3", err)
	}
}

// TestStreamPrefixIsolation: stores with different prefixes share a server
// and see only their own streams.
func TestStreamPrefixIsolation(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	a := connect(t, srv.URL(), esdb.Options{StreamPrefix: "a-"})
	b := connect(t, srv.URL(), esdb.Options{StreamPrefix: "b-"})
	ra := mustAppend(t, a, "s", eventstore.NoStream(), ev("a"))
	mustAppend(t, b, "s", eventstore.NoStream(), ev("b"), ev("b"))
	ctx := ctxFor(t)
	evs, err := a.ReadAll(ctx, eventstore.Start, 10)
	if err != nil || len(evs) != 1 || evs[0].Stream != "s" {
		t.Fatalf("a's ReadAll = %+v, %v; want its one event in stream s", evs, err)
	}
	if head, err := a.Head(ctx); err != nil || head != ra.Position {
		t.Errorf("a's Head = %v, %v; want %v", head, err, ra.Position)
	}
	if evs, err := b.ReadStream(ctx, "s", eventstore.Forwards, 0, 10); err != nil || len(evs) != 2 {
		t.Errorf("b's stream = %d events, %v; want 2", len(evs), err)
	}
}

// TestSubscriptionSurvivesOutage stops the server under a live
// subscription long enough for the library to give up discovery and close
// itself, then brings it back: the store must rebuild the client, appends
// must work again, and the subscriber must get every event once, in order.
func TestSubscriptionSurvivesOutage(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	logs := &capture{}
	s := connect(t, srv.URL()+"&maxDiscoverAttempts=2&discoveryInterval=10",
		esdb.Options{Logger: slog.New(logs), MaxRetryDelay: 50 * time.Millisecond})
	var want []uuid.UUID
	add := func(e eventstore.EventData) {
		mustAppend(t, s, "outage-"+e.ID.String()[:8], eventstore.NoStream(), e)
		want = append(want, e.ID)
	}
	for range 3 {
		add(ev("before"))
	}
	c := newCollector()
	subscribe(t, s, eventstore.Start, c)
	c.waitFor(t, "catch-up", func(evs []eventstore.RecordedEvent, caughtUp bool) bool { return caughtUp && len(evs) == 3 })

	srv.Stop()
	ctx := ctxFor(t)
	for i := range 3 {
		if _, err := s.Append(ctx, "down", eventstore.Any(), ev("lost")); !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("append %d during the outage: %v; want ErrUnavailable", i, err)
		}
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		add(ev("after"))
	}
	c.waitFor(t, "events after the outage", func(evs []eventstore.RecordedEvent, _ bool) bool { return len(evs) >= len(want) })
	c.mu.Lock()
	var got []uuid.UUID
	for _, e := range c.events {
		got = append(got, e.ID)
	}
	c.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("subscriber got %v; want %v", got, want)
	}
	if !logs.contains("rebuilt") {
		t.Errorf("the store never rebuilt the client; logs: %v", logs.messages())
	}
}

// TestNoGoroutineLeak: a store, its subscriptions and the test server leave
// no goroutines behind once closed.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, err := esdbtest.New(esdbtest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		s, err := esdb.New(ctxFor(t), srv.URL(), esdb.Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for range 3 {
			c := newCollector()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.SubscribeAll(ctx, eventstore.Start, c.handle) }()
			mustAppend(t, s, "leak-"+uuid.NewString()[:8], eventstore.NoStream(), ev("a"))
			c.waitFor(t, "an event", func(evs []eventstore.RecordedEvent, _ bool) bool { return len(evs) > 0 })
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("SubscribeAll after cancel: %v", err)
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond) // goroutines end asynchronously; nothing signals it
	}
}

// collector gathers a subscription's deliveries and signals progress.
type collector struct {
	mu         sync.Mutex
	deliveries []eventstore.Delivery
	events     []eventstore.RecordedEvent
	caughtUp   bool
	changed    chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, d eventstore.Delivery) error {
	c.mu.Lock()
	c.deliveries = append(c.deliveries, d)
	c.events = append(c.events, d.Events...)
	c.caughtUp = c.caughtUp || d.CaughtUp
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) waitFor(t testing.TB, what string, cond func([]eventstore.RecordedEvent, bool) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		ok, n := cond(c.events, c.caughtUp), len(c.events)
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

// subscribe runs SubscribeAll until t's cleanup.
func subscribe(t testing.TB, s eventstore.Store, from eventstore.Position, c *collector) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.SubscribeAll(ctx, from, c.handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("SubscribeAll returned %v; want context.Canceled", err)
		}
	})
}

// capture is a slog handler that keeps messages.
type capture struct {
	mu   sync.Mutex
	msgs []string
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *capture) WithGroup(string) slog.Handler            { return c }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, r.Message)
	return nil
}

func (c *capture) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

func (c *capture) contains(s string) bool {
	return slices.ContainsFunc(c.messages(), func(m string) bool { return strings.Contains(m, s) })
}
