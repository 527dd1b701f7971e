package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	"github.com/evchat/evchat/eventstore/postgres"
)

// bus is an in-memory Hints shared by the stores of "other processes". While
// muted it loses every hint, as a dropped listening connection would.
type bus struct {
	mu    sync.Mutex
	muted bool
	subs  map[int]func(string)
	ready map[int]func()
	next  int
}

func newBus() *bus { return &bus{subs: map[int]func(string){}, ready: map[int]func(){}} }

func (b *bus) Listen(onNotify func(string), onReady func()) func() {
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id], b.ready[id] = onNotify, onReady
	b.mu.Unlock()
	onReady()
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		delete(b.ready, id)
		b.mu.Unlock()
	}
}

func (b *bus) Notify(_ context.Context, payload string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.muted {
		return nil
	}
	for _, f := range b.subs {
		f(payload)
	}
	return nil
}

// reconnect unmutes the bus and calls every ready hook, as the notifier does
// after it listens again.
func (b *bus) reconnect() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.muted = false
	for _, f := range b.ready {
		f()
	}
}

// hintedStores returns two stores on one database, as two processes would
// have, that poll so rarely that only a hint can wake a subscription.
func hintedStores(t *testing.T, h postgres.Hints) (writer, reader *postgres.Store) {
	t.Helper()
	_, pool := newStoreAndPool(t, conformance.Options{})
	opts := postgres.Options{PollInterval: time.Hour, Hints: h}
	writer, reader = postgres.New(pool, opts), postgres.New(pool, opts)
	t.Cleanup(func() {
		writer.Close()
		reader.Close()
	})
	return writer, reader
}

// subscribe follows reader's log and returns the channel its events arrive
// on, once the subscription has read the (empty) log and waits for a wake-up.
func subscribe(t *testing.T, ctx context.Context, reader *postgres.Store) <-chan eventstore.RecordedEvent {
	t.Helper()
	got := make(chan eventstore.RecordedEvent, 16)
	caughtUp := make(chan struct{})
	go func() {
		_ = reader.SubscribeAll(ctx, eventstore.Start, func(_ context.Context, d eventstore.Delivery) error {
			for _, e := range d.Events {
				got <- e
			}
			if d.CaughtUp && len(d.Events) == 0 {
				close(caughtUp)
			}
			return nil
		})
	}()
	select {
	case <-caughtUp:
	case <-time.After(30 * time.Second):
		t.Fatal("the subscription did not catch up (hung)")
	}
	return got
}

func awaitEvent(t *testing.T, got <-chan eventstore.RecordedEvent, stream string) {
	t.Helper()
	select {
	case e := <-got:
		if e.Stream != stream {
			t.Fatalf("got an event of %q, want %q", e.Stream, stream)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the subscription was not woken (hung)")
	}
}

// Another process's append wakes a subscription through the hints.
func TestHintWakesOtherProcess(t *testing.T) {
	b := newBus()
	writer, reader := hintedStores(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := subscribe(t, ctx, reader)
	if _, err := writer.Append(ctx, "hinted-1", eventstore.Any(), testEvent()); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, got, "hinted-1")
}

// Hints lost while the listener was down are made up for by the ready hook.
func TestReadyHookWakesAfterLostHints(t *testing.T) {
	b := newBus()
	writer, reader := hintedStores(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.mu.Lock()
	b.muted = true
	b.mu.Unlock()
	got := subscribe(t, ctx, reader)
	if _, err := writer.Append(ctx, "hinted-2", eventstore.Any(), testEvent()); err != nil {
		t.Fatal(err)
	}
	b.reconnect()
	awaitEvent(t, got, "hinted-2")
}
