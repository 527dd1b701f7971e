package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
)

// Subscriptions that read from the same cursor share one query, a result
// is current only for a subscription that woke before the read began, and
// each taker gets its own copy of the events.
func TestSubscriptionsShareReads(t *testing.T) {
	s, _ := newStoreAndPool(t, conformance.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := testEvent()
	if _, err := s.Append(ctx, "shared-1", eventstore.Any(), first); err != nil {
		t.Fatal(err)
	}
	gen := s.Generation()
	type result struct {
		events  []eventstore.RecordedEvent
		current bool
	}
	read := func(from eventstore.Position, gen uint64, fresh bool) result {
		t.Helper()
		events, hidden, current, err := s.ReadShared(ctx, from, 10, gen, fresh)
		if err != nil || hidden {
			t.Fatalf("read from %v: hidden %t, %v", from, hidden, err)
		}
		return result{events, current}
	}
	ids := func(r result) string {
		var out []uuid.UUID
		for _, e := range r.events {
			out = append(out, e.ID)
		}
		return fmt.Sprint(out, " current=", r.current)
	}
	want := func(step string, r result, current bool, queries int64, events ...eventstore.EventData) {
		t.Helper()
		var wantIDs []uuid.UUID
		for _, e := range events {
			wantIDs = append(wantIDs, e.ID)
		}
		if got, w := ids(r), fmt.Sprint(wantIDs, " current=", current); got != w {
			t.Errorf("%s: got %s; want %s", step, got, w)
		}
		if q := s.SharedQueries(); q != queries {
			t.Errorf("%s: %d queries of the log so far; want %d", step, q, queries)
		}
	}

	one := read(eventstore.Start, gen, false)
	want("first read", one, true, 1, first)
	two := read(eventstore.Start, gen, false)
	want("same cursor, same wake-up", two, true, 1, first)

	one.events[0].Type = "changed by its taker"
	if two.events[0].Type == one.events[0].Type {
		t.Error("two takers of one read share their events slice")
	}
	if again := read(eventstore.Start, gen, false); again.events[0].Type != first.Type {
		t.Errorf("the shared read was changed by a taker: type %q", again.events[0].Type)
	}

	second := testEvent()
	if _, err := s.Append(ctx, "shared-2", eventstore.Any(), second); err != nil {
		t.Fatal(err)
	}
	s.Wake() // as the append's batch does once it has answered
	later := s.Generation()
	if later <= gen {
		t.Fatalf("wake-up generation %d after a wake-up at %d", later, gen)
	}
	stale := read(eventstore.Start, later, false)
	want("woken after the read began", stale, false, 1, first)
	next := read(one.events[0].Position, later, false)
	want("the batch after the shared one", next, true, 2, second)

	fresh := read(eventstore.Start, later, true)
	want("fresh", fresh, true, 3, first, second)
	want("after a fresh read", read(eventstore.Start, later, false), true, 3, first, second)
}

// The shared reads keep a bounded amount of event data: past it the oldest
// read is let go, and a subscription still at its cursor reads again.
func TestSharedReadsLetTheOldestGo(t *testing.T) {
	s, _ := newStoreAndPool(t, conformance.Options{})
	s.LimitSharedBytes(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read := func(from eventstore.Position) []eventstore.RecordedEvent {
		t.Helper()
		events, _, _, err := s.ReadShared(ctx, from, 10, s.Generation(), false)
		if err != nil || len(events) == 0 {
			t.Fatalf("read from %v: %d events, %v", from, len(events), err)
		}
		return events
	}
	if _, err := s.Append(ctx, "bounded-1", eventstore.Any(), testEvent()); err != nil {
		t.Fatal(err)
	}
	first := read(eventstore.Start)
	read(eventstore.Start)
	if q := s.SharedQueries(); q != 1 {
		t.Fatalf("%d queries for two reads of the newest batch; want 1 (the newest is always kept)", q)
	}
	if _, err := s.Append(ctx, "bounded-2", eventstore.Any(), testEvent()); err != nil {
		t.Fatal(err)
	}
	read(first[len(first)-1].Position)
	read(eventstore.Start)
	if q := s.SharedQueries(); q != 3 {
		t.Fatalf("%d queries; want 3: the first read was let go once a newer one filled the bound", q)
	}
}

// Several subscriptions of one store that follow concurrent appends each see
// every event once, in log order.
func TestSubscriptionsSharingReadsMissNothing(t *testing.T) {
	s, _ := newStoreAndPool(t, conformance.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const writers, perWriter, subscribers = 6, 40, 3
	const total = writers * perWriter
	type seen struct {
		ids  map[uuid.UUID]bool
		last eventstore.Position
		err  error
		all  chan struct{} // closed once every event arrived
		told bool          // all is closed
	}
	results := make([]*seen, subscribers)
	var subs sync.WaitGroup
	subCtx, stop := context.WithCancel(ctx)
	for i := range results {
		r := &seen{ids: map[uuid.UUID]bool{}, all: make(chan struct{})}
		results[i] = r
		subs.Go(func() {
			_ = s.SubscribeAll(subCtx, eventstore.Start, func(_ context.Context, d eventstore.Delivery) error {
				for _, e := range d.Events {
					switch {
					case r.err != nil:
					case !r.last.Less(e.Position):
						r.err = fmt.Errorf("position %v after %v", e.Position, r.last)
					case r.ids[e.ID]:
						r.err = fmt.Errorf("event %s twice", e.ID)
					}
					r.last = e.Position
					r.ids[e.ID] = true
				}
				if len(r.ids) == total && !r.told {
					r.told = true
					close(r.all)
				}
				return nil
			})
		})
	}

	var appends sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		appends.Go(func() {
			for i := range perWriter {
				if _, err := s.Append(ctx, fmt.Sprintf("sharing-%d-%d", w, i%3), eventstore.Any(), testEvent()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	appends.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, r := range results {
		select {
		case <-r.all:
		case <-ctx.Done():
			t.Errorf("subscriber %d: not every event arrived in time", i)
		}
	}
	stop()
	subs.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Errorf("subscriber %d: %v", i, r.err)
		}
		if len(r.ids) != total {
			t.Errorf("subscriber %d saw %d of %d events", i, len(r.ids), total)
		}
	}
}
