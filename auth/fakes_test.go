package auth_test

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/internal/clocktest"
)

// clock is a test clock that moves only when told.
type clock = clocktest.Clock

func newClock() *clock { return clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

// sessions is an in-memory auth.SessionStore on a test clock.
type sessions struct {
	clock *clock
	mu    sync.Mutex
	m     map[uuid.UUID]*session
	reads int // State calls
}

type session struct {
	auth.Session
	revoked bool
	rotated time.Time
}

func newSessions(c *clock) *sessions { return &sessions{clock: c, m: map[uuid.UUID]*session{}} }

func (s *sessions) Create(_ context.Context, ss auth.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[ss.ID] = &session{Session: ss}
	return nil
}

func (s *sessions) live(ss *session) bool { return !ss.revoked && ss.Expires.After(s.clock.Now()) }

func (s *sessions) Rotate(_ context.Context, id, from, to uuid.UUID, expires time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok || !s.live(ss) || ss.RefreshJTI != from {
		return false, nil
	}
	ss.RefreshJTI, ss.Expires, ss.rotated = to, expires, s.clock.Now()
	return true, nil
}

func (s *sessions) RevokeReused(_ context.Context, id, jti uuid.UUID, grace time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok || !s.live(ss) || ss.RefreshJTI == jti || ss.rotated.IsZero() || ss.rotated.Add(grace).After(s.clock.Now()) {
		return false, nil
	}
	ss.revoked = true
	return true, nil
}

func (s *sessions) State(_ context.Context, id uuid.UUID) (bool, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	ss, ok := s.m[id]
	if !ok {
		return false, time.Time{}, auth.ErrSessionNotFound
	}
	return ss.revoked, ss.Expires, nil
}

func (s *sessions) Revoke(_ context.Context, id uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.m[id]; ok {
		ss.revoked = true
	}
	return nil
}

func (s *sessions) stateReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// bus is an in-memory auth.Bus shared by the Tokens of several "processes".
type bus struct {
	mu   sync.Mutex
	subs []func(string)
	// ready are the onReady callbacks, to simulate reconnects.
	ready []func()
}

func (b *bus) Publish(_ context.Context, _, payload string) error {
	b.mu.Lock()
	subs := append([]func(string){}, b.subs...)
	b.mu.Unlock()
	for _, f := range subs {
		f(payload)
	}
	return nil
}

func (b *bus) Subscribe(_ string, onMessage func(string), onReady func()) {
	b.mu.Lock()
	b.subs = append(b.subs, onMessage)
	b.ready = append(b.ready, onReady)
	b.mu.Unlock()
	onReady()
}

func (b *bus) reconnect() {
	b.mu.Lock()
	ready := append([]func(){}, b.ready...)
	b.mu.Unlock()
	for _, f := range ready {
		f()
	}
}

// attempts is an in-memory auth.AttemptStore on a test clock.
type attempts struct {
	clock *clock
	mu    sync.Mutex
	m     map[string]*counter
}

type counter struct {
	n          int
	ends, next time.Time
}

func newAttempts(c *clock) *attempts { return &attempts{clock: c, m: map[string]*counter{}} }

func (a *attempts) Add(_ context.Context, subject string, delta int, window time.Duration) (int, time.Time, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock.Now()
	c, ok := a.m[subject]
	if !ok || !c.ends.After(now) {
		c = &counter{ends: now.Add(window)}
		a.m[subject] = c
	}
	c.n = max(0, c.n+delta)
	return c.n, c.ends, nil
}

func (a *attempts) Claim(_ context.Context, subject string, delay time.Duration) (bool, time.Time, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock.Now()
	c, ok := a.m[subject]
	if !ok {
		return false, time.Time{}, nil
	}
	if c.next.After(now) {
		return false, c.next, nil
	}
	c.next = now.Add(delay)
	return true, c.next, nil
}

func (a *attempts) Reset(_ context.Context, subjects ...string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range subjects {
		delete(a.m, s)
	}
	return nil
}
