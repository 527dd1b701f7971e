package realtime

import (
	"sync"
	"time"
)

// Clock tells the time and runs timers; tests give a manual one.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f in its own goroutine after d; stop cancels it and
	// reports whether it had not run yet.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// typingGate lets through, per user and room, one "typing" notice per
// interval, and one "stopped typing" after each "typing" let through:
// however many sockets a user types from, and however fast, the room hears
// at most two notices of them per interval. Notices held back are dropped
// (typing is ephemeral: the next one tells the same).
type typingGate struct {
	clock    Clock
	interval time.Duration

	mu     sync.Mutex
	seen   map[typingKey]typingState
	sweep  time.Time
	maxLen int
}

type typingKey struct{ room, user int64 }

type typingState struct {
	startedAt time.Time // last "typing" let through
	typing    bool      // and no "stopped" since
}

func newTypingGate(clock Clock, interval time.Duration) *typingGate {
	return &typingGate{clock: clock, interval: interval, seen: map[typingKey]typingState{}, maxLen: 1024}
}

// pass reports whether a notice goes out, and notes it.
func (g *typingGate) pass(room, user int64, isTyping bool) bool {
	now := g.clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.forget(now)
	k := typingKey{room, user}
	st, ok := g.seen[k]
	switch {
	case isTyping && ok && now.Sub(st.startedAt) < g.interval:
		return false
	case isTyping:
		g.seen[k] = typingState{startedAt: now, typing: true}
		return true
	case !ok || !st.typing:
		return false // nothing to stop
	}
	st.typing = false
	g.seen[k] = st
	return true
}

// forget drops, now and then, what is long past: a "stopped" more than
// ten intervals after its "typing" is dropped too (clients stop showing a
// notice long before that).
func (g *typingGate) forget(now time.Time) {
	if len(g.seen) < g.maxLen || now.Sub(g.sweep) < g.interval {
		return
	}
	g.sweep = now
	for k, st := range g.seen {
		if now.Sub(st.startedAt) >= 10*g.interval {
			delete(g.seen, k)
		}
	}
}
