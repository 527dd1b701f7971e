package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/evchat/evchat/internal/wait"
)

// op is one request of a closed-loop load. It returns the bucket its
// latency belongs to (0 when there is only one).
type op func(ctx context.Context, worker int, rng *rand.Rand) (bucket int, err error)

// loadSpec shapes a closed-loop load.
type loadSpec struct {
	name     string // scenario, for the error log
	workers  int
	buckets  int // latency buckets op may return; 0 means 1
	warmup   time.Duration
	duration time.Duration
	cpu      func() cpuSample // nil: CPU use is not reported
}

// closedLoop runs spec.workers goroutines that each issue op back to back,
// first for spec.warmup (not measured), then for spec.duration. It
// summarises, per bucket, the latencies of the ops that started inside the
// measured window; the rate is their count over spec.duration. Failed ops go
// to errs and are counted in Errors. It ends early with ctx's error.
func closedLoop(ctx context.Context, spec loadSpec, errs *errorLog, fn op) ([]summary, error) {
	buckets := max(spec.buckets, 1)
	start := time.Now()
	measureFrom := start.Add(spec.warmup)
	end := measureFrom.Add(spec.duration)

	samples := make([][][]time.Duration, spec.workers) // worker, bucket
	failures := make([][]int, spec.workers)
	var wg sync.WaitGroup
	var cpuFrom, cpuTo cpuSample
	if spec.cpu != nil {
		wg.Go(func() {
			if wait.Sleep(ctx, time.Until(measureFrom)) == nil {
				cpuFrom = spec.cpu()
			}
			if wait.Sleep(ctx, time.Until(end)) == nil {
				cpuTo = spec.cpu()
			}
		})
	}
	for w := range spec.workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			mine := make([][]time.Duration, buckets)
			failed := make([]int, buckets)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				b, err := fn(ctx, w, rng)
				d := time.Since(t0)
				measured := !t0.Before(measureFrom)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					errs.add(spec.name, err)
					if measured {
						failed[b]++
					}
					continue
				}
				if measured {
					mine[b] = append(mine[b], d)
				}
			}
			samples[w], failures[w] = mine, failed
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]summary, buckets)
	for b := range buckets {
		var all []time.Duration
		nerr := 0
		for w := range spec.workers {
			all = append(all, samples[w][b]...)
			nerr += failures[w][b]
		}
		out[b] = summarize(all, spec.duration)
		out[b].Errors = nerr
		if !cpuFrom.at.IsZero() && !cpuTo.at.IsZero() {
			out[b].CPU = cpuTo.since(cpuFrom)
		}
	}
	return out, nil
}

// parallel runs fn for every index in [0, n) on at most workers goroutines
// and returns the first error. It stops handing out work once fn fails or
// ctx ends.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
