package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/auth"
)

func newThrottle(c *clock) *auth.Throttle {
	return auth.NewThrottle(auth.ThrottleConfig{
		Attempts: newAttempts(c), Window: 15 * time.Minute, Now: c.Now,
		PerUserAddress: 5, PerAddress: 50, PerUser: 10, MaxDelay: 30 * time.Second,
	})
}

func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	var th *auth.Throttled
	if !errors.As(err, &th) {
		t.Fatalf("err = %v; want *auth.Throttled", err)
	}
	return th.RetryAfter
}

func TestThrottlePerUserAddress(t *testing.T) {
	c := newClock()
	th := newThrottle(c)
	ctx := context.Background()
	for i := range 5 {
		if err := th.Begin(ctx, "alice", "10.0.0.1"); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	if ra := retryAfter(t, th.Begin(ctx, "alice", "10.0.0.1")); ra != 15*time.Minute {
		t.Fatalf("Retry-After = %v; want the window's end, 15m", ra)
	}
	// Names differing in case are one username.
	retryAfter(t, th.Begin(ctx, "ALICE", "10.0.0.1"))
	// Other addresses and other usernames are not hindered.
	if err := th.Begin(ctx, "alice", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if err := th.Begin(ctx, "bob", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	c.Advance(15 * time.Minute)
	if err := th.Begin(ctx, "alice", "10.0.0.1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestThrottlePerAddress(t *testing.T) {
	c := newClock()
	th := newThrottle(c)
	ctx := context.Background()
	for i := range 50 {
		if err := th.Begin(ctx, fmt.Sprintf("user%d", i), "10.0.0.1"); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	retryAfter(t, th.Begin(ctx, "someone", "10.0.0.1"))

	// Successes are given back: a busy address of honest users (a NAT)
	// is not refused for logging in.
	c.Advance(15 * time.Minute)
	for i := range 200 {
		u := fmt.Sprintf("user%d", i)
		if err := th.Begin(ctx, u, "10.0.0.9"); err != nil {
			t.Fatalf("successful login %d: %v", i+1, err)
		}
		th.Succeeded(ctx, u, "10.0.0.9")
	}
}

// The per-username limit slows, never locks: after PerUser failures from
// anywhere, one attempt per delay goes through, the delay doubling with
// every attempt counted from a second up to MaxDelay.
func TestThrottlePerUserSlowsDown(t *testing.T) {
	c := newClock()
	th := newThrottle(c)
	ctx := context.Background()
	addr := 0
	attempt := func() error {
		addr++ // a botnet: every attempt from a new address
		return th.Begin(ctx, "alice", fmt.Sprintf("10.1.%d.%d", addr/256, addr%256))
	}
	for i := range 10 {
		if err := attempt(); err != nil {
			t.Fatalf("free attempt %d: %v", i+1, err)
		}
	}
	var prev time.Duration
	for range 6 {
		if err := attempt(); err != nil { // the slot is free: it goes through
			t.Fatalf("slot attempt: %v", err)
		}
		// Until the slot frees, refused with when to come back; refusals
		// count too, so the delay grows, up to MaxDelay.
		ra := retryAfter(t, attempt())
		if ra < prev || ra > 30*time.Second {
			t.Fatalf("Retry-After = %v after %v; want it growing, at most 30s", ra, prev)
		}
		prev = ra
		c.Advance(ra)
	}
	if prev != 30*time.Second {
		t.Fatalf("delay after many attempts = %v; want MaxDelay, 30s", prev)
	}
	// The owner from home, after at most MaxDelay, gets in and the
	// username starts over.
	if err := th.Begin(ctx, "alice", "192.0.2.1"); err != nil {
		c.Advance(retryAfter(t, err))
		if err := th.Begin(ctx, "alice", "192.0.2.1"); err != nil {
			t.Fatalf("owner after waiting Retry-After: %v", err)
		}
	}
	th.Succeeded(ctx, "alice", "192.0.2.1")
	for i := range 10 {
		if err := attempt(); err != nil {
			t.Fatalf("after a success, free attempt %d: %v", i+1, err)
		}
	}
}

// Concurrent attempts are each counted before any is let through: of 60 at
// once at one username from one address, exactly the limit pass.
func TestThrottleConcurrent(t *testing.T) {
	c := newClock()
	th := newThrottle(c)
	ctx := context.Background()
	var passed, refused int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() {
			err := th.Begin(ctx, "alice", "10.0.0.1")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				passed++
			} else {
				retryAfter(t, err)
				refused++
			}
		})
	}
	wg.Wait()
	if passed != 5 || refused != 55 {
		t.Fatalf("passed %d, refused %d of 60; want 5 and 55", passed, refused)
	}
}

// Usernames are quoted into the counters: no username can name another
// subject's counter.
func TestThrottleSubjectsCannotCollide(t *testing.T) {
	c := newClock()
	th := newThrottle(c)
	ctx := context.Background()
	for range 5 {
		if err := th.Begin(ctx, "a@b", "c"); err != nil {
			t.Fatal(err)
		}
	}
	retryAfter(t, th.Begin(ctx, "a@b", "c"))
	if err := th.Begin(ctx, "a", "b@c"); err != nil {
		t.Fatalf("a different (username, address) whose joined form is the same: %v", err)
	}
}
