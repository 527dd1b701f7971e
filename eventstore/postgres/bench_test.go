package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/embeddedpg"
	"github.com/evchat/evchat/migrations"
)

// benchServer is a PostgreSQL with normal durability (fsync on), unlike
// the test server: commit costs are part of what is measured.
var benchServer struct {
	once sync.Once
	url  string
	err  error
	mu   sync.Mutex // guards stop
	stop func()
}

// stopBenchServer stops the benchmarks' server, if one was started, and
// removes its folder (TestMain).
func stopBenchServer() {
	benchServer.mu.Lock()
	defer benchServer.mu.Unlock()
	if benchServer.stop != nil {
		benchServer.stop()
		benchServer.stop = nil
	}
}

func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	benchServer.once.Do(func() {
		dir, err := os.MkdirTemp("", "evchat-bench-")
		if err != nil {
			benchServer.err = err
			return
		}
		srv, err := embeddedpg.Start(context.Background(), embeddedpg.Config{DataDir: filepath.Join(dir, "pg")})
		if err != nil {
			benchServer.err = err
			_ = os.RemoveAll(dir)
			return
		}
		benchServer.url = srv.URL("postgres")
		benchServer.mu.Lock()
		benchServer.stop = func() { _ = srv.Stop(context.Background()); _ = os.RemoveAll(dir) }
		benchServer.mu.Unlock()
	})
	if benchServer.err != nil {
		b.Fatal(benchServer.err)
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, benchServer.url)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	name := "bench_" + uuid.NewString()[:8]
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	cfg, _ := pgxpool.ParseConfig(benchServer.url)
	cfg.ConnConfig.Database = name
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, pool); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE plain_inserts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		stream_id text NOT NULL, type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		pool.Close()
		admin, err := pgxpool.New(context.Background(), benchServer.url)
		if err == nil {
			_, _ = admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
			admin.Close()
		}
	})
	return pool
}

var (
	benchData = []byte(`{"conversation_id":12,"message_id":3456,"sender_id":7,"receivers":[8,9],"text":"Hello, world! This is a benchmark message."}`)
	benchMeta = []byte(`{"actor_id":7,"request_id":"bench-request-0000","time":"2026-11-25T12:00:00.000000Z","v":2}`)
)

// parallel runs n operations on w goroutines and returns the elapsed time.
func parallel(n, w int, op func(worker, i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, w)
	start := time.Now()
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(g, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

// BenchmarkAppend measures single-event appends at 1 and 16 writers next to
// the baseline of the same number of plain single-row INSERT transactions of
// the same payload into a plain table on the same server, and the delivery
// lag of a live subscriber during the appends. Metrics: appends/s,
// inserts/s, store/baseline (the ratio), lag-p50-ms, lag-p99-ms.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			pool := benchPool(b)
			ctx := context.Background()
			store := postgres.New(pool, postgres.Options{})
			defer store.Close()
			n := max(b.N, 200)

			baseline, err := parallel(n, writers, func(w, i int) error {
				_, err := pool.Exec(ctx, `INSERT INTO plain_inserts (stream_id, type, data, metadata) VALUES ($1, $2, $3, $4)`,
					fmt.Sprintf("bench-%d", w), "chat.message_sent", benchData, benchMeta)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}

			// A live subscriber measures how long each event takes to reach it.
			head, err := store.Head(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var appended sync.Map // event id → time the append returned
			lags := make([]time.Duration, 0, n)
			got := make(chan struct{})
			subCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			var lagMu sync.Mutex
			go func() {
				_ = store.SubscribeAll(subCtx, head, func(_ context.Context, d eventstore.Delivery) error {
					now := time.Now()
					lagMu.Lock()
					defer lagMu.Unlock()
					for _, e := range d.Events {
						// An event can arrive before its Append call has returned.
						if t, ok := appended.Load(e.ID); ok {
							lags = append(lags, max(0, now.Sub(t.(time.Time))))
						} else {
							lags = append(lags, 0)
						}
					}
					if len(lags) >= n {
						close(got)
						return context.Canceled
					}
					return nil
				})
			}()

			b.ResetTimer()
			elapsed, err := parallel(n, writers, func(w, i int) error {
				id := uuid.New()
				_, err := store.Append(ctx, fmt.Sprintf("bench-%d-%d", w, i%64), eventstore.Any(),
					eventstore.EventData{ID: id, Type: "chat.message_sent", Data: benchData, Metadata: benchMeta})
				appended.Store(id, time.Now())
				return err
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			select {
			case <-got:
			case <-time.After(30 * time.Second):
				b.Fatal("subscriber did not receive every event")
			}
			lagMu.Lock()
			slices.Sort(lags)
			p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
			lagMu.Unlock()
			rate := float64(n) / elapsed.Seconds()
			base := float64(n) / baseline.Seconds()
			b.ReportMetric(rate, "appends/s")
			b.ReportMetric(base, "inserts/s")
			b.ReportMetric(rate/base, "store/baseline")
			b.ReportMetric(float64(p50.Microseconds())/1000, "lag-p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "lag-p99-ms")
		})
	}
}

func TestMainStopsBenchServer(t *testing.T) {
	// Keeps the benchmark's own server from outliving a benchmark run: the
	// test binary's exit path goes through pgtest.Main, which cannot know of
	// it, so stop it from a cleanup of this (always run) test as well.
	t.Cleanup(func() {
		if benchServer.stop != nil {
			benchServer.stop()
		}
	})
}

// BenchmarkCatchUp reads a log of 100,000 and of 1,000,000 events from its
// start in batches, as a projector catching up or a rebuild does, next to
// the baseline of the same rows read in the same batches by a plain keyset
// query (no visibility horizon, no check for hidden rows) in the same run.
// Metrics: events/s, baseline-events/s, store/baseline. A log twice as long
// should cost twice as much to read, no more: compare the rates of the two
// lengths.
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		// One log serves both batch sizes; its database goes when they
		// are done.
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			pool := catchUpLog(b, n)
			for _, batch := range []int{500, 10_000} {
				b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchCatchUp(b, pool, n, batch) })
			}
		})
	}
}

// catchUpLog returns a pool on a database whose log holds n message
// events over 1,000 streams.
func catchUpLog(b *testing.B, n int) *pgxpool.Pool {
	ctx := context.Background()
	pool := benchPool(b)
	if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
		SELECT gen_random_uuid(), 'conversation-' || g % 1000, g / 1000, 'MessageSent', $1::jsonb || jsonb_build_object('message_id', g), $2::jsonb
		  FROM generate_series(0, $3::int - 1) g`, benchData, benchMeta, n); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	return pool
}

func benchCatchUp(b *testing.B, pool *pgxpool.Pool, n, batch int) {
	ctx := context.Background()
	s := postgres.New(pool, postgres.Options{})
	defer s.Close()
	read := func() (time.Duration, error) {
		start := time.Now()
		got, from := 0, eventstore.Start
		for {
			evs, err := s.ReadAll(ctx, from, batch)
			if err != nil {
				return 0, err
			}
			if len(evs) == 0 {
				break
			}
			got += len(evs)
			from = evs[len(evs)-1].Position
		}
		if got != n {
			return 0, fmt.Errorf("read %d events; want %d", got, n)
		}
		return time.Since(start), nil
	}
	plain := func() (time.Duration, error) {
		start := time.Now()
		got, tx, pos := 0, int64(0), int64(0)
		for {
			rows, err := pool.Query(ctx, `SELECT event_id, stream_id, revision, tx_id, position, type, data::text, metadata::text, created_at
				FROM events WHERE (tx_id, position) > ($1, $2) ORDER BY tx_id, position LIMIT $3`, tx, pos, batch)
			if err != nil {
				return 0, err
			}
			k := 0
			for rows.Next() {
				var id uuid.UUID
				var stream, typ, data, meta string
				var rev int64
				var created time.Time
				if err := rows.Scan(&id, &stream, &rev, &tx, &pos, &typ, &data, &meta, &created); err != nil {
					rows.Close()
					return 0, err
				}
				k++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return 0, err
			}
			if k == 0 {
				break
			}
			got += k
		}
		if got != n {
			return 0, fmt.Errorf("plain read %d rows; want %d", got, n)
		}
		return time.Since(start), nil
	}
	var store, base time.Duration
	for b.Loop() {
		d, err := read()
		if err != nil {
			b.Fatal(err)
		}
		p, err := plain()
		if err != nil {
			b.Fatal(err)
		}
		store, base = store+d, base+p
	}
	rate := float64(n*b.N) / store.Seconds()
	baseRate := float64(n*b.N) / base.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(baseRate, "baseline-events/s")
	b.ReportMetric(rate/baseRate, "store/baseline")
}
