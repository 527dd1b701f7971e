package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// summary describes a set of latency samples taken over a measured window.
type summary struct {
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	Rate   float64 `json:"rate_per_s"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	// CPU is what chatd, PostgreSQL and the benchmark used in the window.
	CPU *cpuUse `json:"cpu_cores,omitempty"`
}

// summarize sorts samples in place and describes them; window is the
// measured time the samples were taken in (for the rate).
func summarize(samples []time.Duration, window time.Duration) summary {
	slices.Sort(samples)
	s := summary{Count: len(samples)}
	if window > 0 {
		s.Rate = float64(len(samples)) / window.Seconds()
	}
	if len(samples) == 0 {
		return s
	}
	var total time.Duration
	for _, d := range samples {
		total += d
	}
	s.MeanMs = ms(total / time.Duration(len(samples)))
	s.P50Ms = ms(percentile(samples, 50))
	s.P99Ms = ms(percentile(samples, 99))
	s.MaxMs = ms(samples[len(samples)-1])
	return s
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// ascending samples: the smallest sample that at least p percent of the
// samples are less than or equal to. It returns 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratio is a/b, or NaN when b is zero (shown as "n/a").
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// errorLog counts failures by description and keeps the distinct ones, so
// that a server bug shows up as "500 ... x123" rather than as a number.
type errorLog struct {
	mu     sync.Mutex
	counts map[string]int
	order  []string
}

const maxDistinctErrors = 20

func (l *errorLog) add(scenario string, err error) {
	msg := scenario + ": " + err.Error()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	if _, ok := l.counts[msg]; !ok {
		if len(l.order) >= maxDistinctErrors {
			msg = scenario + ": (other errors)"
		}
		if _, ok := l.counts[msg]; !ok {
			l.order = append(l.order, msg)
		}
	}
	l.counts[msg]++
}

// total is the number of errors logged for scenario ("" for all).
func (l *errorLog) total(scenario string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for msg, c := range l.counts {
		if scenario == "" || strings.HasPrefix(msg, scenario+": ") {
			n += c
		}
	}
	return n
}

// lines lists each distinct error with its count, in order of first sight.
func (l *errorLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.order))
	for _, msg := range l.order {
		out = append(out, fmt.Sprintf("%s (x%d)", msg, l.counts[msg]))
	}
	return out
}

// histogram is a compact view of sorted latency samples for the details
// section.
func histogram(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return "no samples"
	}
	var parts []string
	for _, p := range []float64{50, 90, 99, 99.9} {
		parts = append(parts, fmt.Sprintf("p%g=%s", p, fmtDur(percentile(sorted, p))))
	}
	parts = append(parts, "max="+fmtDur(sorted[len(sorted)-1]))
	return strings.Join(parts, " ")
}

// fmtDur prints a latency with a precision that suits its size.
func fmtDur(d time.Duration) string {
	return fmtMs(ms(d))
}

func fmtMs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}
