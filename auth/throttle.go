package auth

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// AttemptStore keeps the counters of login attempts. Each operation is
// atomic on its own: concurrent logins see each other's counts.
type AttemptStore interface {
	// Add adds delta to subject's count in its current window, starting a
	// new window of the given length when the last one has ended, and
	// returns the count and when the window ends.
	Add(ctx context.Context, subject string, delta int, window time.Duration) (count int, ends time.Time, err error)
	// Claim takes subject's next slot if it is free (its time has come),
	// setting the following one delay later; otherwise it returns when the
	// slot is free. Claiming an unknown subject fails with the zero time.
	Claim(ctx context.Context, subject string, delay time.Duration) (ok bool, next time.Time, err error)
	// Reset forgets subjects.
	Reset(ctx context.Context, subjects ...string) error
}

// ThrottleConfig are the limits of login attempts within Window.
type ThrottleConfig struct {
	Attempts AttemptStore
	Window   time.Duration
	// PerUserAddress is how many failed attempts one address may make at
	// one username: the next is refused until the window ends.
	PerUserAddress int
	// PerAddress is how many attempts (at any usernames, successes given
	// back) one address may make.
	PerAddress int
	// PerUser is how many attempts at one username, from anywhere, go
	// unhindered; after that the username is slowed, not locked: one
	// attempt per delay, the delay doubling from a second up to MaxDelay.
	PerUser  int
	MaxDelay time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// Throttle slows down guessing passwords without letting anyone lock
// another user out.
//
// An attempt is counted before its password is checked, atomically, so
// concurrent guesses cannot all pass a check that none of them has been
// counted in yet. Three counters: per (username, address), hard; per
// address, hard; per username from anywhere, soft: a username under attack
// from many addresses gets one attempt per (growing, bounded) delay, and
// its owner, from an address that has not failed, gets in within MaxDelay.
type Throttle struct{ cfg ThrottleConfig }

// NewThrottle returns a Throttle.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Throttle{cfg: cfg}
}

// subjects are the counters of an attempt at username from addr.
type subjects struct{ user, addr, userAt string }

// subjectsOf quotes the username: it may hold anything a client sends,
// NUL bytes and '@' included.
func subjectsOf(username, addr string) subjects {
	u := strconv.Quote(strings.ToLower(username))
	return subjects{user: "user:" + u, addr: "addr:" + addr, userAt: "user@addr:" + u + "@" + addr}
}

// Begin counts a login attempt at username from addr, or refuses it with
// *Throttled. The attempt stays counted unless Succeeded follows.
func (th *Throttle) Begin(ctx context.Context, username, addr string) error {
	a := subjectsOf(username, addr)
	w := th.cfg.Window
	n, ends, err := th.cfg.Attempts.Add(ctx, a.userAt, 1, w)
	if err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	if n > th.cfg.PerUserAddress {
		return th.refuse(ends)
	}
	if n, ends, err = th.cfg.Attempts.Add(ctx, a.addr, 1, w); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	if n > th.cfg.PerAddress {
		return th.refuse(ends)
	}
	if n, _, err = th.cfg.Attempts.Add(ctx, a.user, 1, w); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	if over := n - th.cfg.PerUser; over > 0 {
		ok, next, err := th.cfg.Attempts.Claim(ctx, a.user, th.delay(over))
		if err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
		if !ok {
			return th.refuse(next)
		}
	}
	return nil
}

// delay is the wait between attempts at a username over its free ones.
func (th *Throttle) delay(over int) time.Duration {
	if over > 30 {
		return th.cfg.MaxDelay
	}
	return min(th.cfg.MaxDelay, time.Second<<(over-1))
}

func (th *Throttle) refuse(until time.Time) error {
	return &Throttled{RetryAfter: max(time.Second, until.Sub(th.cfg.Now()))}
}

// Succeeded records a right password for an attempt Begin let through: the
// username's counters start over and the address gets its attempt back.
func (th *Throttle) Succeeded(ctx context.Context, username, addr string) {
	a := subjectsOf(username, addr)
	if err := th.cfg.Attempts.Reset(ctx, a.user, a.userAt); err != nil {
		th.cfg.Logger.Error("clear failed logins", "err", err)
	}
	if _, _, err := th.cfg.Attempts.Add(ctx, a.addr, -1, th.cfg.Window); err != nil {
		th.cfg.Logger.Error("clear failed logins", "err", err)
	}
}
