package notifier_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/postgres/notifier"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// hung bounds a wait for something that must happen; reaching it is a
// failure, never the thing measured.
const hung = 30 * time.Second

func start(t *testing.T) (*notifier.Notifier, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	n := notifier.New(notifier.Pool(pool), nil)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		pool.Close()
	})
	return n, pool
}

func recv(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("payload %q; want %q", got, want)
		}
	case <-time.After(hung):
		t.Fatalf("no notification %q", want)
	}
}

func waitReady(t *testing.T, ready <-chan struct{}) {
	t.Helper()
	select {
	case <-ready:
	case <-time.After(hung):
		t.Fatal("the ready hook was not called")
	}
}

func TestListenBeforeAndAfterConnect(t *testing.T) {
	t.Parallel()
	n, _ := start(t)
	ctx := context.Background()
	a, aReady := make(chan string, 10), make(chan struct{}, 10)
	n.Listen("chan_a", func(p string) { a <- p }, func() { aReady <- struct{}{} })
	waitReady(t, aReady)
	if err := n.Notify(ctx, "chan_a", "one"); err != nil {
		t.Fatal(err)
	}
	recv(t, a, "one")

	// A channel subscribed while the connection waits is listened to
	// without a reconnect, and its ready hook says when.
	b, bReady := make(chan string, 10), make(chan struct{}, 10)
	sub := n.Listen("chan_b", func(p string) { b <- p }, func() { bReady <- struct{}{} })
	waitReady(t, bReady)
	if err := n.Notify(ctx, "chan_b", "two"); err != nil {
		t.Fatal(err)
	}
	recv(t, b, "two")
	if err := n.Notify(ctx, "chan_a", "three"); err != nil {
		t.Fatal(err)
	}
	recv(t, a, "three")
	select {
	case <-aReady:
		t.Fatal("a's ready hook ran again without a reconnect")
	default:
	}

	// After Unlisten, b hears nothing more; a still does.
	sub.Unlisten()
	if err := n.Notify(ctx, "chan_b", "four"); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, "chan_a", "five"); err != nil {
		t.Fatal(err)
	}
	recv(t, a, "five") // notifications arrive in order: b's "four" came before
	select {
	case p := <-b:
		t.Fatalf("unlistened subscription got %q", p)
	default:
	}
}

func TestReconnectCallsReadyAgain(t *testing.T) {
	t.Parallel()
	n, pool := start(t)
	ctx := context.Background()
	got, ready := make(chan string, 10), make(chan struct{}, 10)
	n.Listen("chan_r", func(p string) { got <- p }, func() { ready <- struct{}{} })
	waitReady(t, ready)
	<-n.Ready()

	// End the listening session from the server side, as a database
	// restart or a network failure would.
	tag, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("terminated %d listening sessions; want 1", tag.RowsAffected())
	}
	waitReady(t, ready) // listening again: whatever was missed must be looked for
	if err := n.Notify(ctx, "chan_r", "after"); err != nil {
		t.Fatal(err)
	}
	recv(t, got, "after")
}
