package wait

import "time"

// Backoff is the one growing delay of this module, for loops that retry a
// lost connection or a failing call: the first failure waits First, each
// next one twice as long, up to Max. Reset after a success. The zero value
// waits 100 ms, growing to 5 s.
type Backoff struct {
	First, Max time.Duration
	d          time.Duration
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	first, limit := b.First, b.Max
	if first <= 0 {
		first = 100 * time.Millisecond
	}
	if limit <= 0 {
		limit = 5 * time.Second
	}
	if b.d == 0 {
		b.d = first
	} else {
		b.d = min(2*b.d, limit)
	}
	return b.d
}

// Reset starts the delays over.
func (b *Backoff) Reset() { b.d = 0 }
