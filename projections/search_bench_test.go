package projections_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/internal/synthlog"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

// BenchmarkSearchBackfill measures how fast the live search projector
// backfills a log of SEARCH_EVENTS events (default 100,000; the synthetic
// chat log of BenchmarkRebuild) when the index is added to an installation:
// the projector that chatd runs, from the start of the log to its head,
// the way a deploy that adds search does it while the server serves. It
// also reports projections.RebuildSearch (chatctl projections rebuild
// search) on the same log. It runs once whatever b.N is.
func BenchmarkSearchBackfill(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SEARCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "readmodel, public"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Apply(ctx, pool); err != nil {
		b.Fatal(err)
	}
	if err := synthlog.Load(ctx, pool, syntheticLog(n, 1000)); err != nil {
		b.Fatal(err)
	}
	store := postgres.New(pool, postgres.Options{})
	defer store.Close()
	head, err := store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	reached := make(chan struct{})
	var once sync.Once
	var applied int64
	p := projections.NewProjector(pool, store, projections.NewSearch(domain.NewRegistry()), projections.ProjectorOptions{
		Schema: migrations.Search,
		OnApplied: func(evs []eventstore.RecordedEvent, through eventstore.Position) {
			applied += int64(len(evs))
			if !through.Less(head) {
				once.Do(func() { close(reached) })
			}
		},
	})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- p.RunOnce(runCtx) }()
	select {
	case <-reached:
	case err := <-ran:
		b.Fatalf("projector stopped: %v", err)
	}
	elapsed := time.Since(start)
	stop()
	<-ran
	start = time.Now()
	rebuilt, err := projections.RebuildSearch(ctx, pool, store, projections.NewSearch(domain.NewRegistry()), projections.RebuildOptions{BatchSize: 10000})
	if err != nil {
		b.Fatal(err)
	}
	rebuildElapsed := time.Since(start)
	b.StopTimer()
	var rows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM search.messages WHERE tsv @@ 'message'::tsquery`).Scan(&rows); err != nil || rows == 0 {
		b.Fatalf("index has %d matching rows: %v", rows, err)
	}
	rate := float64(applied) / elapsed.Seconds()
	rebuildRate := float64(rebuilt) / rebuildElapsed.Seconds()
	b.ReportMetric(float64(applied), "events")
	b.ReportMetric(rate, "backfill-events/s")
	b.ReportMetric(rebuildRate, "rebuild-events/s")
	fmt.Fprintf(os.Stderr, "search backfill: %d events (%d messages) in %.1fs: %.0f events/s; rebuild search: %.0f events/s\n",
		applied, rows, elapsed.Seconds(), rate, rebuildRate)
}
