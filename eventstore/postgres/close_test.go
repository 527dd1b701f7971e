package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	"github.com/evchat/evchat/eventstore/postgres"
)

// hung is how long a test waits for something that must happen promptly
// before calling it hung. It is never what a test measures.
const hung = time.Minute

func checkClosedError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, postgres.ErrClosed) || !errors.Is(err, eventstore.ErrUnavailable) {
		t.Errorf("append on a closed store: err = %v; want one wrapping ErrClosed and ErrUnavailable", err)
	}
}

// Every append after Close fails at once: none is queued for workers that
// have exited, where it would wait forever.
func TestAppendAfterCloseFails(t *testing.T) {
	t.Parallel()
	s, _ := newStoreAndPool(t, conformance.Options{})
	if _, err := s.Append(t.Context(), "before-close", eventstore.NoStream(), testEvent()); err != nil {
		t.Fatal(err)
	}
	s.Close()

	const n = 200
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Append(context.Background(), fmt.Sprintf("after-close-%d", i), eventstore.Any(), testEvent())
			errs <- err
		}()
	}
	timeout := time.After(hung)
	for i := range n {
		select {
		case err := <-errs:
			checkClosedError(t, err)
		case <-timeout:
			t.Fatalf("%d of %d appends after Close never returned", n-i, n)
		}
	}
}

// Appends racing Close either succeed or fail with ErrClosed; none blocks.
// Each writer appends until one of its appends begins after Close has begun.
func TestAppendRacingCloseNeverHangs(t *testing.T) {
	t.Parallel()
	s, _ := newStoreAndPool(t, conformance.Options{})
	const writers = 8
	var ok atomic.Int64
	var closing atomic.Bool
	flowing := make(chan struct{})
	var flowingOnce sync.Once
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				last := closing.Load()
				_, err := s.Append(context.Background(), fmt.Sprintf("racing-%d-%d", w, i), eventstore.NoStream(), testEvent())
				if err != nil {
					errs <- err
				} else if ok.Add(1) >= writers {
					flowingOnce.Do(func() { close(flowing) })
				}
				if last {
					return
				}
			}
		})
	}
	select {
	case <-flowing: // appends are flowing: close in the middle of them
	case err := <-errs:
		t.Fatalf("append before Close: %v", err)
	case <-time.After(hung):
		t.Fatal("no appends succeeded (hung)")
	}
	closing.Store(true)
	s.Close()

	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(hung):
		t.Fatalf("appends racing Close never returned (%d succeeded)", ok.Load())
	}
	close(errs)
	for err := range errs {
		checkClosedError(t, err)
	}
}
