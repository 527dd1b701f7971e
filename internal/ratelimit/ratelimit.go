// Package ratelimit is an in-process token bucket per key (a user, an
// address): each key may spend Burst requests at once and then Rate a
// second. It keeps no state outside the process: behind N processes a key
// gets up to N times its limit. It does not model fairness between keys or
// queueing: a request either takes a token now or is told when one will be
// there.
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limit is a sustained rate (tokens a second) and a burst. The zero Limit
// is unset (a configuration fills it with its default); Off lets everything
// through.
type Limit struct {
	Rate  float64 // tokens a second; +Inf: unlimited
	Burst int
}

// maxRate bounds the number of a rate and a burst: more is "off".
const maxRate = 1e9

// Off is the limit that never refuses.
var Off = Limit{Rate: math.Inf(1)}

// IsZero reports whether the limit is unset.
func (l Limit) IsZero() bool { return l == Limit{} }

// Unlimited reports whether the limit never refuses.
func (l Limit) Unlimited() bool { return math.IsInf(l.Rate, 1) }

var units = []struct {
	name string
	per  time.Duration
}{{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}

// String writes the limit as Parse reads it: "off", or "<n>/<s|m|h>,<burst>".
func (l Limit) String() string {
	if l.Unlimited() {
		return "off"
	}
	for _, u := range units {
		n := l.Rate * u.per.Seconds()
		if n >= 1 && n <= maxRate && n == math.Trunc(n) {
			return fmt.Sprintf("%d/%s,%d", int64(n), u.name, l.Burst)
		}
	}
	return fmt.Sprintf("%s/s,%d", strconv.FormatFloat(l.Rate, 'g', -1, 64), l.Burst)
}

// Parse reads "off", or "<n>/<s|m|h>" with an optional ",<burst>" (the
// burst defaults to n, at least 1): "20/s,40", "10/h".
func Parse(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return Off, nil
	}
	rate, burst, hasBurst := strings.Cut(s, ",")
	num, unit, ok := strings.Cut(rate, "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %q: want <n>/<s|m|h>[,<burst>] or off", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || !(n > 0 && n <= maxRate) {
		return Limit{}, fmt.Errorf("rate limit %q: the rate must be a positive number up to %d", s, int64(maxRate))
	}
	var per time.Duration
	for _, u := range units {
		if strings.TrimSpace(unit) == u.name {
			per = u.per
		}
	}
	if per == 0 {
		return Limit{}, fmt.Errorf("rate limit %q: the unit must be s, m or h", s)
	}
	l := Limit{Rate: n / per.Seconds(), Burst: max(1, int(math.Ceil(n)))}
	if hasBurst {
		b, err := strconv.Atoi(strings.TrimSpace(burst))
		if err != nil || b < 1 || b > maxRate {
			return Limit{}, fmt.Errorf("rate limit %q: the burst must be a positive integer up to %d", s, int64(maxRate))
		}
		l.Burst = b
	}
	return l, nil
}

// UnmarshalText implements encoding.TextUnmarshaler (for flag.TextVar).
func (l *Limit) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err == nil {
		*l = v
	}
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (l Limit) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Limiter holds a token bucket per key. Buckets that have filled up again
// are dropped now and then, so memory follows the keys active within the
// time a bucket takes to refill.
type Limiter[K comparable] struct {
	limit Limit
	now   func() time.Time

	mu      sync.Mutex
	buckets map[K]*bucket
	sweepAt int
}

type bucket struct {
	tokens float64
	at     time.Time
}

// minSweep is the number of buckets below which none is dropped.
const minSweep = 1024

// New returns a limiter of limit per key. now is its clock (nil:
// time.Now).
func New[K comparable](limit Limit, now func() time.Time) *Limiter[K] {
	if now == nil {
		now = time.Now
	}
	return &Limiter[K]{limit: limit, now: now, buckets: map[K]*bucket{}, sweepAt: minSweep}
}

// Allow takes a token from key's bucket. When there is none it takes
// nothing and returns false and how long until there is one.
func (l *Limiter[K]) Allow(key K) (bool, time.Duration) {
	if l == nil || l.limit.Unlimited() {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(l.limit.Burst), at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if l.limit.Rate <= 0 {
		return false, time.Duration(math.MaxInt64)
	}
	wait := time.Duration((1 - b.tokens) / l.limit.Rate * float64(time.Second))
	return false, max(wait, time.Nanosecond)
}

func (l *Limiter[K]) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.limit.Burst), b.tokens+d.Seconds()*l.limit.Rate)
		b.at = now
	}
}

// sweep drops the buckets that are full again (a new one would be the
// same) and sets when to sweep next: when the map has doubled.
func (l *Limiter[K]) sweep(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.limit.Burst) {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(minSweep, 2*len(l.buckets))
}

// Len is the number of buckets held (for tests).
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
