package esdb

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/evchat/evchat/eventstore/esdbtest"
)

// A library call whose caller stopped waiting still runs; Close must not
// close the client under it. The call here is held until Close has
// answered, so Close cannot see it finish: it must report the call still
// running and leave the client open, not close it.
func TestCloseLeavesTheClientToAnAbandonedCall(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, srv.URL(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.closeWait = time.Millisecond // the call is held regardless; this only shortens the wait

	entered, hold := make(chan struct{}), make(chan struct{})
	finished := make(chan error, 1)
	callCtx, stop := context.WithCancel(ctx)
	go func() {
		finished <- s.do(callCtx, func(ctx context.Context, c *kurrent.Client) error {
			close(entered)
			<-hold // as the library's server search, which ignores ctx
			return nil
		})
	}()
	<-entered
	stop()
	if err := <-finished; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned call returned %v; want context.Canceled", err)
	}

	err = s.Close()
	close(hold)
	if err == nil {
		t.Fatal("Close closed the client while an abandoned library call was still running")
	}
	// With the call done, the client is idle; the store stays closed.
	s.wg.Wait()
	if _, err := s.Head(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v; want ErrClosed", err)
	}
	if err := s.current().client.Close(); err != nil {
		t.Fatalf("closing the idle client: %v", err)
	}
}
