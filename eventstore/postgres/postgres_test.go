package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
)

// The benchmarks' durable server (bench_test.go) stops with the tests' one.
func TestMain(m *testing.M) { pgtest.Main(m, stopBenchServer) }

func newStore(t testing.TB, o conformance.Options) eventstore.Store {
	t.Helper()
	s, _ := newStoreAndPool(t, o)
	return s
}

func TestConformance(t *testing.T) {
	conformance.Run(t, newStore)
}

// newStoreAndPool returns a store on a fresh migrated database, and its pool.
func newStoreAndPool(t testing.TB, o conformance.Options) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, pool); err != nil {
		pool.Close()
		t.Fatal(err)
	}
	s := postgres.New(pool, postgres.Options{CommitDelay: o.CommitDelay})
	t.Cleanup(func() {
		s.Close()
		pool.Close()
	})
	return s, pool
}

func testEvent() eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: "test.happened", Data: []byte(`{}`), Metadata: []byte(`{}`)}
}

// A long transaction that writes elsewhere (a rebuild, a read-model batch,
// another database) must not hold whole-log readers back; a transaction that
// may be appending (it holds a lock on events) must.
func TestHorizonIgnoresTransactionsThatCannotAppend(t *testing.T) {
	s, pool := newStoreAndPool(t, conformance.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx) //nolint:errcheck
	if _, err := long.Exec(ctx, `CREATE TABLE unrelated (x int); INSERT INTO unrelated VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	first := testEvent()
	if _, err := s.Append(ctx, "horizon-1", eventstore.Any(), first); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := s.ReadAll(ctx, eventstore.Start, 10)
	if err != nil || len(got) != 1 || got[0].ID != first.ID {
		t.Fatalf("ReadAll under an unrelated long transaction = %d events, %v; want the appended one", len(got), err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("ReadAll waited %v for a transaction that cannot append", waited)
	}

	// A transaction that holds the events lock and has an id may still
	// append below later events: readers must wait for it.
	appender, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer appender.Rollback(ctx) //nolint:errcheck
	if _, err := appender.Exec(ctx, `LOCK TABLE events IN ROW EXCLUSIVE MODE; SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	sub := make(chan eventstore.RecordedEvent, 10)
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = s.SubscribeAll(subCtx, got[0].Position, func(_ context.Context, d eventstore.Delivery) error {
			for _, e := range d.Events {
				sub <- e
			}
			return nil
		})
	}()
	second := testEvent()
	if _, err := s.Append(ctx, "horizon-2", eventstore.Any(), second); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub:
		t.Fatalf("event %s delivered while an older appending transaction was open", e.ID)
	case <-time.After(300 * time.Millisecond): // no signal exists for "not delivered"
	}
	if err := appender.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub:
		if e.ID != second.ID {
			t.Fatalf("delivered %s; want %s", e.ID, second.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event not delivered after the appending transaction ended")
	}
}
