package projections_test

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/evchat/evchat/projections"
)

// TestPauseWaitsForTheBatchInFlight: a pause waits for the batch that is
// committing, which commits; the batch after the pause is refused and
// rolled back whole, and the projection carries on from its checkpoint once
// resumed.
func TestPauseWaitsForTheBatchInFlight(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	ctx := t.Context()
	created := l.room(t, 2)

	var hold atomic.Bool
	atCommit := make(chan struct{}, 1)
	release := make(chan struct{})
	logs := &levelRecorder{}
	p := projections.NewProjector(l.pool, l.store, projections.NewChat(l.reg), projections.ProjectorOptions{
		Logger: slog.New(logs),
		BeforeCommit: func(ctx context.Context) error {
			if !hold.Load() {
				return nil
			}
			atCommit <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	runProjector(t, p.Run)
	l.waitCheckpoint(t, created)

	hold.Store(true)
	inFlight := l.message(t, 1)
	recv(t, "the batch to reach its commit", atCommit)
	paused := make(chan error, 1)
	go func() { paused <- projections.Pause(ctx, l.pool, projections.ChatName) }()
	waitFor(t, "the pause to wait for the batch's lock", func() bool {
		var waiting bool
		if err := l.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting
	})
	hold.Store(false)
	close(release)
	if err := recv(t, "the pause to return", paused); err != nil {
		t.Fatal(err)
	}
	if cp := l.checkpoint(t); cp != inFlight {
		t.Fatalf("checkpoint after the pause = %s; want the batch in flight's %s", cp, inFlight)
	}

	after := l.message(t, 2)
	waitFor(t, "the projector to find its batch refused", func() bool {
		return slices.Contains(logs.at(slog.LevelInfo), "projection paused; waiting to be resumed")
	})
	if cp := l.checkpoint(t); cp != inFlight {
		t.Fatalf("checkpoint while paused = %s; want it still at %s", cp, inFlight)
	}
	var n int
	if err := l.pool.QueryRow(ctx, `SELECT count(*) FROM readmodel.messages WHERE id = 2`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("message sent while paused: %d rows, %v; want none", n, err)
	}
	if err := projections.Resume(ctx, l.pool, projections.ChatName); err != nil {
		t.Fatal(err)
	}
	l.waitCheckpoint(t, after)
}
