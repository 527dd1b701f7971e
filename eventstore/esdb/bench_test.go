package esdb_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/esdb"
	"github.com/evchat/evchat/eventstore/esdbtest"
)

// BenchmarkAppend appends single events through the adapter, the client
// and gRPC to the protocol test double, from 1 and from 16 goroutines, each
// on its own streams. It measures the adapter and the client, not a server.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			srv := esdbtest.Start(b, esdbtest.Options{})
			s := connect(b, srv.URL(), esdb.Options{})
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
		})
	}
}

// BenchmarkCatchUpRead reads a log of 10,000 events from the start with
// ReadAll in batches of 500, as a projection catching up does.
func BenchmarkCatchUpRead(b *testing.B) {
	const total, batch = 10_000, 500
	srv := esdbtest.Start(b, esdbtest.Options{})
	s := connect(b, srv.URL(), esdb.Options{})
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
