package projections_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/projections"
)

// runProjector runs p until the test ends and checks it stopped only
// because it was told to.
func runProjector(t *testing.T, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := recv(t, "the projector to stop", done); !errors.Is(err, context.Canceled) {
				t.Errorf("projector returned %v; want context.Canceled", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestFenceRefusesStaleBatch: projector A reads a batch with a join, and
// before it commits projector B applies that join and the leave after it. A
// must not commit its batch over B's: the user who left would be a member
// again. A starts again from the stored checkpoint instead, quietly.
func TestFenceRefusesStaleBatch(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	chat := projections.NewChat(l.reg)
	created := l.room(t, 2)

	logs := &levelRecorder{}
	gated := newGatedStore(l.store)
	appliedA := newAppliedRecorder()
	a := projections.NewProjector(l.pool, gated, chat, projections.ProjectorOptions{
		Logger: slog.New(logs), OnApplied: appliedA.record})
	runProjector(t, a.Run)
	l.waitCheckpoint(t, created)

	first := gated.arm()
	join := l.join(t, 2)
	if held := recv(t, "A to read the join", first.held); held[len(held)-1].Position != join {
		t.Fatalf("A holds a batch through %s; want it through the join at %s", held[len(held)-1].Position, join)
	}
	leave := l.leave(t, 2)

	// B projects the join and the leave while A holds its batch.
	b := projections.NewProjector(l.pool, l.store, chat, projections.ProjectorOptions{})
	stopB := runProjector(t, b.Run)
	l.waitCheckpoint(t, leave)
	stopB()
	if l.member(t, 2) {
		t.Fatal("user 2 is a member after B projected the leave")
	}

	// A's next delivery (the leave, had A's stale batch committed) is held,
	// so that the read model is looked at right after A's batch.
	second := gated.arm()
	close(first.release)
	select {
	case <-appliedA.committed(t.Context(), join):
	case <-gated.subscribedFrom(t.Context(), leave):
	case <-time.After(hung):
		t.Fatal("hung: A neither committed its batch nor started again")
	}
	if l.member(t, 2) {
		t.Fatal("user 2 is a member again: A's stale batch with the join committed over B's leave")
	}
	if got := l.checkpoint(t); got != leave {
		t.Fatalf("checkpoint = %s; want %s, where B left it", got, leave)
	}

	// A goes on from the stored checkpoint.
	close(second.release)
	msg := l.message(t, 1)
	l.waitCheckpoint(t, msg)
	if l.member(t, 2) {
		t.Fatal("user 2 is a member again after A went on")
	}
	if errs := logs.at(slog.LevelError); len(errs) > 0 {
		t.Fatalf("A logged errors %q; a refused batch is not one", errs)
	}
	if warns := logs.at(slog.LevelWarn); len(warns) == 0 {
		t.Fatal("A logged no warning; want one for the refused batch")
	}
}

// TestFenceRefusesBatchParkedBehindRebuildSwap: the live projector sends a
// batch with a join while a rebuild's swap holds the read model; the batch
// waits for the swap, whose read model already has the join and the leave
// after it. Once the swap commits, the batch runs against the swapped-in
// tables and must be refused there, not make the user a member again.
func TestFenceRefusesBatchParkedBehindRebuildSwap(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	chat := projections.NewChat(l.reg)
	created := l.room(t, 2)

	gated := newGatedStore(l.store)
	applied := newAppliedRecorder()
	p := projections.NewProjector(l.pool, gated, chat, projections.ProjectorOptions{OnApplied: applied.record})
	runProjector(t, p.Run)
	l.waitCheckpoint(t, created)

	first := gated.arm()
	join := l.join(t, 2)
	recv(t, "the projector to read the join", first.held)
	leave := l.leave(t, 2)
	second := gated.arm()

	swap := &swapGate{LogReader: l.store, locked: make(chan struct{}), proceed: make(chan struct{})}
	proceed := sync.OnceFunc(func() { close(swap.proceed) })
	defer proceed() // never leave the swap holding the read model
	rebuilt := make(chan error, 1)
	go func() {
		_, err := projections.Rebuild(context.Background(), l.pool, swap, chat, projections.RebuildOptions{})
		rebuilt <- err
	}()
	recv(t, "the rebuild's swap to lock the read model", swap.locked)
	close(first.release)
	// The batch waits on the first read-model table it touches: the
	// checkpoints, or a table its statements name while they are prepared.
	waitFor(t, "the projector's batch to wait for the swap", func() bool {
		var waiting bool
		if err := l.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE NOT granted AND locktype = 'relation'
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting
	})
	proceed()
	if err := recv(t, "the rebuild", rebuilt); err != nil {
		t.Fatalf("rebuild: %v", err)
	}

	select {
	case <-applied.committed(t.Context(), join):
	case <-gated.subscribedFrom(t.Context(), leave):
	case <-time.After(hung):
		t.Fatal("hung: the projector neither committed its batch nor started again")
	}
	if l.member(t, 2) {
		t.Fatal("user 2 is a member again: the batch parked behind the swap committed its join over the rebuilt leave")
	}
	close(second.release)
	msg := l.message(t, 1)
	l.waitCheckpoint(t, msg)
	if l.member(t, 2) {
		t.Fatal("user 2 is a member again after the projector went on")
	}
}

// swapGate reads the log for a rebuild and stops the swap's first read,
// which the swap makes while it holds the live read model locked (it comes
// after the read that found the log exhausted), until proceed is closed.
type swapGate struct {
	projections.LogReader
	mu              sync.Mutex
	drained, fired  bool
	locked, proceed chan struct{}
}

func (s *swapGate) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	s.mu.Lock()
	stop := s.drained && !s.fired
	s.fired = s.fired || stop
	s.mu.Unlock()
	if stop {
		close(s.locked)
		select {
		case <-s.proceed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	events, err := s.LogReader.ReadAll(ctx, from, count)
	if err == nil && len(events) == 0 {
		s.mu.Lock()
		s.drained = true
		s.mu.Unlock()
	}
	return events, err
}
