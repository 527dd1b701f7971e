package auth_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/auth"
)

type fixture struct {
	clock    *clock
	sessions *sessions
	key      ed25519.PrivateKey

	mu      sync.Mutex
	revoked []uuid.UUID // OnRevoke calls of the first process
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	return &fixture{clock: c, sessions: newSessions(c), key: key}
}

// tokens is one process's Tokens over the fixture's shared store.
func (f *fixture) tokens(onRevoke func(uuid.UUID)) *auth.Tokens {
	return auth.New(auth.Config{
		Sessions: f.sessions, SigningKey: f.key, Now: f.clock.Now,
		AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour, ReuseGrace: 10 * time.Second,
		OnRevoke: onRevoke, Logger: slog.New(slog.DiscardHandler),
	})
}

func (f *fixture) record(id uuid.UUID) {
	f.mu.Lock()
	f.revoked = append(f.revoked, id)
	f.mu.Unlock()
}

func (f *fixture) revocations() []uuid.UUID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uuid.UUID(nil), f.revoked...)
}

func TestLoginAuthenticate(t *testing.T) {
	f := newFixture(t)
	tk := f.tokens(nil)
	ctx := context.Background()
	p, err := tk.Login(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tk.Authenticate(ctx, p.Access)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != 42 || c.SessionID == uuid.Nil || !c.Expires.Equal(f.clock.Now().Add(15*time.Minute).Truncate(time.Second)) {
		t.Fatalf("claims = %+v", c)
	}
	// A refresh token is not an access token, and garbage is nothing.
	for _, raw := range []string{p.Refresh, "", "x.y.z", p.Access + "x"} {
		if _, err := tk.Authenticate(ctx, raw); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("Authenticate(%.20q) = %v; want ErrInvalidToken", raw, err)
		}
	}
	// A token signed by another key is forged.
	other := newFixture(t).tokens(nil)
	forged, err := other.Login(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Authenticate(ctx, forged.Access); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("forged token: %v; want ErrInvalidToken", err)
	}
}

func TestAccessTokenExpires(t *testing.T) {
	f := newFixture(t)
	tk := f.tokens(nil)
	ctx := context.Background()
	p, err := tk.Login(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Authenticate(ctx, p.Access); err != nil { // cached from here on
		t.Fatal(err)
	}
	f.clock.Advance(15*time.Minute + 10*time.Second) // past expiry and the allowed skew
	if _, err := tk.Authenticate(ctx, p.Access); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("expired token: %v; want ErrInvalidToken", err)
	}
}

func TestSessionCheckIsCached(t *testing.T) {
	f := newFixture(t)
	tk := f.tokens(nil)
	ctx := context.Background()
	p, _ := tk.Login(ctx, 1)
	for range 10 {
		if _, err := tk.Authenticate(ctx, p.Access); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.sessions.stateReads(); n != 1 {
		t.Fatalf("10 authentications read the session %d times; want 1", n)
	}
	f.clock.Advance(6 * time.Second) // past the cache's belief
	if _, err := tk.Authenticate(ctx, p.Access); err != nil {
		t.Fatal(err)
	}
	if n := f.sessions.stateReads(); n != 2 {
		t.Fatalf("after the cache's time the session was read %d times in all; want 2", n)
	}
}

func TestRefreshRotates(t *testing.T) {
	f := newFixture(t)
	tk := f.tokens(f.record)
	ctx := context.Background()
	p1, _ := tk.Login(ctx, 7)
	p2, err := tk.Refresh(ctx, p1.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Refresh == p1.Refresh || p2.Access == p1.Access {
		t.Fatal("refresh returned the same tokens")
	}
	if _, err := tk.Refresh(ctx, p2.Access); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("access token used to refresh: %v; want ErrInvalidToken", err)
	}

	// Within the grace, the rotated-away token is a plain refusal.
	f.clock.Advance(9 * time.Second)
	if _, err := tk.Refresh(ctx, p1.Refresh); !errors.Is(err, auth.ErrRefreshReused) {
		t.Fatalf("reuse within the grace: %v; want ErrRefreshReused", err)
	}
	if _, err := tk.Authenticate(ctx, p2.Access); err != nil {
		t.Fatalf("the session's current tokens after a reuse within the grace: %v", err)
	}
	if got := f.revocations(); len(got) != 0 {
		t.Fatalf("revoked %v within the grace", got)
	}

	// Later, it ends the session: every token of it, here and at once.
	f.clock.Advance(2 * time.Second)
	if _, err := tk.Refresh(ctx, p1.Refresh); !errors.Is(err, auth.ErrRefreshReused) {
		t.Fatalf("reuse after the grace: %v; want ErrRefreshReused", err)
	}
	if _, err := tk.Authenticate(ctx, p2.Access); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("access token of a session ended by reuse: %v; want ErrInvalidToken", err)
	}
	if _, err := tk.Refresh(ctx, p2.Refresh); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("refresh token of a session ended by reuse: %v; want ErrInvalidToken", err)
	}
	if got := f.revocations(); len(got) != 1 {
		t.Fatalf("OnRevoke calls = %v; want the session once", got)
	}
}

// A logout on one process reaches the other through the bus, at once: its
// cache does not keep the session alive, and its sockets are told.
func TestRevokeReachesOtherProcesses(t *testing.T) {
	f := newFixture(t)
	b := &bus{}
	here := f.tokens(nil)
	there := f.tokens(f.record)
	here.Listen(b)
	there.Listen(b)
	for _, tk := range []*auth.Tokens{here, there} {
		select {
		case <-tk.Listening():
		default:
			t.Fatal("Listening not closed after the bus was ready")
		}
	}
	ctx := context.Background()
	p, _ := here.Login(ctx, 3)
	c, err := there.Authenticate(ctx, p.Access) // now cached there
	if err != nil {
		t.Fatal(err)
	}
	if err := here.Revoke(ctx, c.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := there.Authenticate(ctx, p.Access); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("the other process after logout: %v; want ErrInvalidToken", err)
	}
	if got := f.revocations(); len(got) != 1 || got[0] != c.SessionID {
		t.Fatalf("the other process's OnRevoke = %v; want [%v]", got, c.SessionID)
	}
}

// After the bus reconnects, notices sent meanwhile may be lost, so every
// cached session is asked about again.
func TestBusReconnectForgetsCachedSessions(t *testing.T) {
	f := newFixture(t)
	b := &bus{}
	tk := f.tokens(nil)
	tk.Listen(b)
	ctx := context.Background()
	p, _ := tk.Login(ctx, 3)
	c, err := tk.Authenticate(ctx, p.Access)
	if err != nil {
		t.Fatal(err)
	}
	// Another process revoked it while this one's bus was down: the store
	// says so, no notice came.
	if err := f.sessions.Revoke(ctx, c.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Authenticate(ctx, p.Access); err != nil {
		t.Fatalf("before the reconnect the cache believes the session: %v", err)
	}
	b.reconnect()
	if _, err := tk.Authenticate(ctx, p.Access); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("after the reconnect: %v; want ErrInvalidToken", err)
	}
}
