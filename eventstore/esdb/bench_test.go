package esdb_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/esdb"
	"github.com/evchat/evchat/eventstore/esdbtest"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
)

// The PostgreSQL store of the benchmarks needs the test server.
func TestMain(m *testing.M) { pgtest.Main(m) }

// benchStores are the stores the benchmarks compare in one run: the adapter
// over the protocol test double (this measures the adapter, the client and
// gRPC, not an EventStoreDB server), and the PostgreSQL store on a test
// database (fsync off).
var benchStores = []struct {
	name string
	open func(b *testing.B) eventstore.Store
}{
	{"esdb", func(b *testing.B) eventstore.Store {
		return connect(b, esdbtest.Start(b, esdbtest.Options{}).URL(), esdb.Options{})
	}},
	{"postgres", func(b *testing.B) eventstore.Store {
		ctx := context.Background()
		pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := migrations.Apply(ctx, pool); err != nil {
			b.Fatal(err)
		}
		s := postgres.New(pool, postgres.Options{})
		b.Cleanup(func() { s.Close(); pool.Close() })
		return s
	}},
}

// BenchmarkAppend appends single events from 1 and from 16 goroutines,
// each on its own stream, through each store.
func BenchmarkAppend(b *testing.B) {
	for _, st := range benchStores {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("store=%s/writers=%d", st.name, writers), func(b *testing.B) {
				benchAppend(b, st.open(b), writers)
			})
		}
	}
}

func benchAppend(b *testing.B, s eventstore.Store, writers int) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("bench-%d", w)
			for next.Add(1) <= int64(b.N) {
				if _, err := s.Append(ctx, stream, eventstore.Any(), ev("bench.appended")); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkCatchUpRead reads a log of 10,000 events from the start with
// ReadAll in batches of 500, as a projection catching up does, from each store.
func BenchmarkCatchUpRead(b *testing.B) {
	for _, st := range benchStores {
		b.Run("store="+st.name, func(b *testing.B) { benchCatchUp(b, st.open(b)) })
	}
}

func benchCatchUp(b *testing.B, s eventstore.Store) {
	const total, batch = 10_000, 500
	ctx := context.Background()
	for i := range total / 100 {
		evs := make([]eventstore.EventData, 100)
		for j := range evs {
			evs[j] = ev("bench.written")
		}
		if _, err := s.Append(ctx, fmt.Sprintf("catchup-%d", i%10), eventstore.Any(), evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n, from := 0, eventstore.Start
		for {
			evs, err := s.ReadAll(ctx, from, batch)
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			n += len(evs)
			from = evs[len(evs)-1].Position
		}
		if n != total {
			b.Fatalf("read %d events; want %d", n, total)
		}
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
}
