// Package clocktest is a clock for tests: time moves only when the test
// advances it, and timers fire then, in the advancing goroutine. It
// satisfies realtime.Clock.
package clocktest

import (
	"slices"
	"sync"
	"time"
)

// Clock is a manual clock. The zero value is not usable: call New.
type Clock struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    time.Time
	timers []*timer
	armed  int // timers ever armed
}

type timer struct {
	at time.Time
	f  func()
}

// New returns a clock at start.
func New(start time.Time) *Clock {
	c := &Clock{now: start}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc runs f once the clock has been advanced by d; stop cancels it
// and reports whether it had not run yet.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.armed++
	c.cond.Broadcast()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, t)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		c.cond.Broadcast()
		return true
	}
}

// Advance moves the clock by d and runs the timers that are then due, in
// the order of their times.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	c.timers = slices.DeleteFunc(c.timers, func(t *timer) bool {
		if !t.at.After(c.now) {
			due = append(due, t)
			return true
		}
		return false
	})
	c.cond.Broadcast()
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *timer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.f()
	}
}

// WaitArmed blocks until at least n timers have been armed since the
// clock was made (whether they are pending still or not).
func (c *Clock) WaitArmed(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.armed < n {
		c.cond.Wait()
	}
}

// Armed is the number of timers armed since the clock was made.
func (c *Clock) Armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

// Timers is the number of timers pending now.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
