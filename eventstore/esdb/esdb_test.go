package esdb_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	"github.com/evchat/evchat/eventstore/esdb"
	"github.com/evchat/evchat/eventstore/esdbtest"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// connect opens a store on url and closes it in t's cleanup.
func connect(t testing.TB, url string, opts esdb.Options) *esdb.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := esdb.New(ctx, url, opts)
	if err != nil {
		t.Fatalf("esdb.New(%s): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newStore is the conformance factory over the protocol test double: the
// real client cannot delay commits, so the delay goes to the server.
func newStore(t testing.TB, o conformance.Options) eventstore.Store {
	srv := esdbtest.Start(t, esdbtest.Options{CommitDelay: o.CommitDelay})
	return connect(t, srv.URL(), esdb.Options{})
}

func TestConformance(t *testing.T) {
	conformance.Run(t, newStore)
}

// TestConformanceRealServer runs the suite against the EventStoreDB server
// at EVENTSTORE_TEST_URL. Every store gets its own stream prefix, and sees
// only its own streams in $all, because the server is shared.
func TestConformanceRealServer(t *testing.T) {
	url := os.Getenv("EVENTSTORE_TEST_URL")
	if url == "" {
		t.Skip("EVENTSTORE_TEST_URL is not set; set it (e.g. esdb://localhost:2113?tls=false) to run the conformance suite against a real EventStoreDB")
	}
	conformance.Run(t, func(t testing.TB, _ conformance.Options) eventstore.Store {
		// CommitDelay cannot be injected into a real server; its commits
		// are concurrent for real.
		return connect(t, url, esdb.Options{StreamPrefix: "evchat-test-" + uuid.NewString()[:8] + "-"})
	})
}
