package postgres_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	"github.com/evchat/evchat/internal/pgtest"
)

// preparedInsertSQL writes one event the way an append does: one statement,
// which locks events before its transaction takes an id.
const preparedInsertSQL = `
WITH s AS (INSERT INTO streams (stream_id, revision) VALUES ($1, 0) RETURNING stream_id)
INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
SELECT $2, s.stream_id, 0, 'test.happened', '{}', '{}' FROM s`

// prepareEvent writes an event in a transaction that it then prepares
// (PREPARE TRANSACTION), and returns the transaction's global id. The
// prepared transaction is rolled back when the test ends if it is still open,
// so that it holds neither the server's horizon nor the test database.
func prepareEvent(t *testing.T, pool *pgxpool.Pool, stream string, e eventstore.EventData) string {
	t.Helper()
	ctx := t.Context()
	var max int
	if err := pool.QueryRow(ctx, `SELECT current_setting('max_prepared_transactions')::int`).Scan(&max); err != nil {
		t.Fatal(err)
	}
	if max == 0 {
		if os.Getenv(pgtest.EnvURL) != "" {
			t.Skipf("the server at %s does not allow prepared transactions (max_prepared_transactions = 0)", pgtest.EnvURL)
		}
		t.Fatal("the test server does not allow prepared transactions (max_prepared_transactions = 0)")
	}
	gid := "evchat-test-" + uuid.NewString()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, step := range []struct {
		sql  string
		args []any
	}{
		{`BEGIN`, nil},
		{preparedInsertSQL, []any{stream, e.ID}},
		{`PREPARE TRANSACTION '` + gid + `'`, nil},
	} {
		if _, err := conn.Exec(ctx, step.sql, step.args...); err != nil {
			_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
			t.Fatalf("%s: %v", step.sql, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var open bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1)`, gid).Scan(&open); err != nil {
			t.Error(err)
			return
		}
		if open {
			if _, err := pool.Exec(ctx, `ROLLBACK PREPARED '`+gid+`'`); err != nil {
				t.Errorf("roll back prepared transaction %s: %v", gid, err)
			}
		}
	})
	return gid
}

func ids(events []eventstore.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// A prepared (two-phase) transaction that wrote events commits them later,
// with COMMIT PREPARED: until then no whole-log reader may read past them,
// or they land behind every reader's cursor and are never delivered.
func TestHorizonHeldByPreparedTransaction(t *testing.T) {
	s, pool := newStoreAndPool(t, conformance.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	first := testEvent()
	res, err := s.Append(ctx, "prepared-first", eventstore.NoStream(), first)
	if err != nil {
		t.Fatal(err)
	}
	prepared := testEvent()
	gid := prepareEvent(t, pool, "prepared-2pc", prepared)
	var later []eventstore.EventData
	for i := range 3 {
		e := testEvent()
		if _, err := s.Append(ctx, "prepared-later-"+uuid.NewString()[:8], eventstore.NoStream(), e); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		later = append(later, e)
	}

	// The later events are committed, but they lie past the prepared
	// transaction's: a read stops before them.
	got, hidden, err := s.ReadAllOnce(ctx, eventstore.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uuid.UUID{first.ID}; !slices.Equal(ids(got), want) || !hidden {
		t.Fatalf("read while a prepared transaction is open: got %v, hidden %v; want %v, hidden true", ids(got), hidden, want)
	}

	// So does a subscription's first read, which it reports as caught up.
	deliveries := make(chan eventstore.Delivery, 100)
	subCtx, stop := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() {
		subDone <- s.SubscribeAll(subCtx, res.Position, func(_ context.Context, d eventstore.Delivery) error {
			deliveries <- d
			return nil
		})
	}()
	defer func() {
		stop()
		<-subDone
	}()
	select {
	case d := <-deliveries:
		if len(d.Events) != 0 {
			t.Fatalf("subscription delivered %v while a prepared transaction older than them is open", ids(d.Events))
		}
	case <-time.After(time.Minute):
		t.Fatal("subscription made no first delivery (hung)")
	}

	if _, err := pool.Exec(ctx, `COMMIT PREPARED '`+gid+`'`); err != nil {
		t.Fatal(err)
	}
	want := []uuid.UUID{prepared.ID}
	for _, e := range later {
		want = append(want, e.ID)
	}

	// After the commit every event is read, the prepared one in its place.
	all, err := s.ReadAll(ctx, eventstore.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), append([]uuid.UUID{first.ID}, want...); !slices.Equal(got, want) {
		t.Fatalf("ReadAll after COMMIT PREPARED = %v; want %v", got, want)
	}

	var delivered []eventstore.RecordedEvent
	for len(delivered) < len(want) {
		select {
		case d := <-deliveries:
			delivered = append(delivered, d.Events...)
		case <-time.After(time.Minute):
			t.Fatalf("subscription delivered %v after COMMIT PREPARED and then nothing (hung); want %v", ids(delivered), want)
		}
	}
	if got := ids(delivered); !slices.Equal(got, want) {
		t.Fatalf("subscription delivered %v; want %v", got, want)
	}
}
