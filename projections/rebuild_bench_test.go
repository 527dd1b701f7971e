package projections_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/internal/proccpu"
	"github.com/evchat/evchat/internal/synthlog"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// syntheticLog returns the rows of a chat log of n events: 200 users, rooms
// rooms of 3 to 6 members, then messages spread over the rooms with a read
// receipt every 20 messages.
func syntheticLog(n, rooms int) [][]any {
	return synthlog.Rows(synthlog.Config{Events: n, Users: 200, Rooms: rooms})
}

// BenchmarkRebuild rebuilds the read model from a log of REBUILD_EVENTS
// events (default 1,000,000) over REBUILD_ROOMS rooms (default 1,000), in
// batches of REBUILD_BATCH events (default chatctl's, RebuildBatch), and
// reports events/s, next to a raw COPY of the same rows into a plain table
// measured in the same run (copy-rows/s) and the ratio. It runs once
// whatever b.N is.
func BenchmarkRebuild(b *testing.B) {
	n, rooms := 1_000_000, 1000
	if v, err := strconv.Atoi(os.Getenv("REBUILD_EVENTS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("REBUILD_ROOMS")); err == nil && v > 0 {
		rooms = v
	}
	batch := projections.RebuildBatch // as chatctl projections rebuild
	if v, err := strconv.Atoi(os.Getenv("REBUILD_BATCH")); err == nil && v > 0 {
		batch = v
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
	rows := syntheticLog(n, rooms)
	if err := synthlog.Load(ctx, pool, rows); err != nil {
		b.Fatal(err)
	}

	// Baseline: a raw COPY of the same rows into a plain table.
	if _, err := pool.Exec(ctx, `CREATE TABLE copy_baseline (event_id uuid, stream_id text, revision bigint, type text, data jsonb, metadata jsonb)`); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"copy_baseline"}, synthlog.Columns, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	copyRate := float64(n) / time.Since(start).Seconds()

	store := postgres.New(pool, postgres.Options{})
	defer store.Close()
	b.ResetTimer()
	goCPU, pgCPU := cpuSeconds(b, pool)
	start = time.Now()
	done, err := projections.Rebuild(ctx, pool, store, projections.NewChat(domain.NewRegistry()), projections.RebuildOptions{BatchSize: batch})
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	goCPU2, pgCPU2 := cpuSeconds(b, pool)
	b.StopTimer()
	var msgs int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM readmodel.messages`).Scan(&msgs); err != nil || msgs == 0 {
		b.Fatalf("rebuilt model has %d messages: %v", msgs, err)
	}
	rate := float64(done) / elapsed.Seconds()
	b.ReportMetric(float64(done), "events")
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(copyRate, "copy-rows/s")
	b.ReportMetric(rate/copyRate, "rebuild/copy")
	fmt.Fprintf(os.Stderr, "rebuild: %d events in %.1fs: %.0f events/s; raw COPY of the same rows: %.0f rows/s; ratio %.2f\n",
		done, elapsed.Seconds(), rate, copyRate, rate/copyRate)
	if goCPU >= 0 && pgCPU >= 0 {
		b.ReportMetric(goCPU2-goCPU, "go-cpu-s")
		b.ReportMetric(pgCPU2-pgCPU, "pg-cpu-s")
		fmt.Fprintf(os.Stderr, "rebuild CPU: %.1fs in this process, %.1fs in the PostgreSQL server\n", goCPU2-goCPU, pgCPU2-pgCPU)
	}
}

// cpuSeconds returns the CPU time used so far by this process and by the
// PostgreSQL server pool is connected to (its postmaster, its processes and
// the processes of it that ended), from /proc: on a shared machine the CPU a
// rebuild costs varies less than the time it takes. Both are -1 when the
// server runs elsewhere or /proc cannot tell.
func cpuSeconds(b *testing.B, pool *pgxpool.Pool) (self, server float64) {
	if os.Getenv(pgtest.EnvURL) != "" {
		return -1, -1 // a server of its own, maybe on another machine
	}
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	_, postmaster, ok := proccpu.Of(backend)
	me, _, ok2 := proccpu.Of(os.Getpid())
	if !ok || !ok2 {
		return -1, -1
	}
	return me.Seconds(), proccpu.Family(postmaster).Seconds()
}
