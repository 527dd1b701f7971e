package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Token types, in the "typ" claim; an access token is never accepted as a
// refresh token or the other way round.
const (
	accessType  = "access"
	refreshType = "refresh"
	issuer      = "evchat"
)

// skew is the clock difference between processes that token times allow.
const skew = 5 * time.Second

// Config is what Tokens are given.
type Config struct {
	Sessions   SessionStore
	SigningKey ed25519.PrivateKey
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// ReuseGrace is how long after a rotation the rotated-away refresh
	// token may come back (two tabs of one session refreshing at once, a
	// client's retry) with a plain 401; later, its use revokes the session.
	ReuseGrace time.Duration
	Logger     *slog.Logger
	// Now is the clock of token times (time.Now when nil).
	Now func() time.Time
	// OnRevoke runs when a session ends on any process (this one included),
	// e.g. to close its WebSockets here.
	OnRevoke func(session uuid.UUID)
}

// Tokens issues and checks JWTs and the sessions behind them. A session is
// one login: its refresh token rotates on every refresh, and revoking it
// (logout) ends its access and refresh tokens at once.
type Tokens struct {
	cfg Config
	pub ed25519.PublicKey
	log *slog.Logger

	mu       sync.Mutex
	verified map[string]Claims
	live     map[uuid.UUID]time.Time

	listening     chan struct{}
	listeningOnce sync.Once
	bus           Bus
}

// Pair is what a login or a refresh hands out.
type Pair struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh"`
}

// Claims are what a verified token tells.
type Claims struct {
	UserID    int64
	SessionID uuid.UUID
	ID        uuid.UUID // jti
	Expires   time.Time
}

// New returns Tokens; call Listen to hear other processes' logouts.
func New(cfg Config) *Tokens {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Tokens{cfg: cfg, pub: cfg.SigningKey.Public().(ed25519.PublicKey), log: cfg.Logger, listening: make(chan struct{})}
}

// AccessTTL is how long an access token lives.
func (t *Tokens) AccessTTL() time.Duration { return t.cfg.AccessTTL }

func (t *Tokens) sign(typ string, user int64, session, jti uuid.UUID, ttl time.Duration) (string, error) {
	now := t.cfg.Now()
	tok, err := jwt.NewBuilder().
		Issuer(issuer).Subject(strconv.FormatInt(user, 10)).
		IssuedAt(now).NotBefore(now).Expiration(now.Add(ttl)).
		JwtID(jti.String()).Claim("sid", session.String()).Claim("typ", typ).
		Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, t.cfg.SigningKey))
	return string(b), err
}

// verify checks signature (EdDSA only), time claims, issuer and type.
func (t *Tokens) verify(raw, typ string) (Claims, error) {
	tok, err := jwt.Parse([]byte(raw),
		jwt.WithKey(jwa.EdDSA, t.pub), jwt.WithValidate(true), jwt.WithIssuer(issuer),
		jwt.WithClock(jwt.ClockFunc(t.cfg.Now)), jwt.WithAcceptableSkew(skew),
		jwt.WithClaimValue("typ", typ))
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	var c Claims
	c.UserID, err = strconv.ParseInt(tok.Subject(), 10, 64)
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	sid, _ := tok.Get("sid")
	s, _ := sid.(string)
	if c.SessionID, err = uuid.Parse(s); err != nil {
		return Claims{}, ErrInvalidToken
	}
	if c.ID, err = uuid.Parse(tok.JwtID()); err != nil {
		return Claims{}, ErrInvalidToken
	}
	c.Expires = tok.Expiration()
	return c, nil
}

// Login opens a session for user and returns its first token pair.
func (t *Tokens) Login(ctx context.Context, user int64) (Pair, error) {
	s := Session{ID: uuid.New(), UserID: user, RefreshJTI: uuid.New(), Expires: t.cfg.Now().Add(t.cfg.RefreshTTL)}
	if err := t.cfg.Sessions.Create(ctx, s); err != nil {
		return Pair{}, fmt.Errorf("open session: %w", err)
	}
	return t.pair(user, s.ID, s.RefreshJTI)
}

func (t *Tokens) pair(user int64, session, refreshJTI uuid.UUID) (Pair, error) {
	access, err := t.sign(accessType, user, session, uuid.New(), t.cfg.AccessTTL)
	if err != nil {
		return Pair{}, err
	}
	refresh, err := t.sign(refreshType, user, session, refreshJTI, t.cfg.RefreshTTL)
	return Pair{Access: access, Refresh: refresh}, err
}

// Refresh rotates a session's refresh token. A refresh token used again
// after its rotation is ErrRefreshReused. Within ReuseGrace of the rotation
// that is all: two clients of one session refreshing at once must not log
// each other out. Later, one of two holders of that token is not its owner
// (a thief who refreshed first, or the owner after the thief did), so the
// session ends, its sockets with it, as the OAuth 2.0 security best current
// practice has it for rotated refresh tokens.
func (t *Tokens) Refresh(ctx context.Context, raw string) (Pair, error) {
	c, err := t.verify(raw, refreshType)
	if err != nil {
		return Pair{}, err
	}
	next := uuid.New()
	ok, err := t.cfg.Sessions.Rotate(ctx, c.SessionID, c.ID, next, t.cfg.Now().Add(t.cfg.RefreshTTL))
	if err != nil {
		return Pair{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	if ok {
		return t.pair(c.UserID, c.SessionID, next)
	}
	revoked, err := t.cfg.Sessions.RevokeReused(ctx, c.SessionID, c.ID, t.cfg.ReuseGrace)
	if err != nil {
		return Pair{}, err
	}
	if revoked {
		t.log.Warn("rotated refresh token used again: session revoked", "user", c.UserID, "session", c.SessionID)
		t.ended(c.SessionID)
		t.announce(ctx, c.SessionID)
	}
	return Pair{}, ErrRefreshReused
}

// Authenticate verifies an access token and that its session is live.
//
// Two caches keep this off the hot path. Verified tokens: verifying the same
// token string always gives the same claims, so its signature is checked
// once (the expiry still on every use). Live sessions: a session known live
// is believed for at most sessionCacheTTL; a logout drops it at once here
// and, through the bus, on every other process (which also drop all they
// know whenever the bus reconnects).
func (t *Tokens) Authenticate(ctx context.Context, raw string) (Claims, error) {
	c, err := t.verifyCached(raw)
	if err != nil {
		return Claims{}, err
	}
	if t.sessionLive(c.SessionID) {
		return c, nil
	}
	revoked, expires, err := t.cfg.Sessions.State(ctx, c.SessionID)
	if errors.Is(err, ErrSessionNotFound) || (err == nil && (revoked || !expires.After(t.cfg.Now()))) {
		return Claims{}, ErrInvalidToken
	}
	if err != nil {
		return Claims{}, fmt.Errorf("check session: %w", err)
	}
	t.rememberSession(c.SessionID, expires)
	return c, nil
}

// sessionCacheTTL bounds how long a session is believed live without asking
// the store.
const sessionCacheTTL = 5 * time.Second

// cacheLimit bounds each cache; a full cache is emptied and starts over.
const cacheLimit = 50_000

func (t *Tokens) verifyCached(raw string) (Claims, error) {
	t.mu.Lock()
	c, ok := t.verified[raw]
	t.mu.Unlock()
	if ok {
		if !t.cfg.Now().Before(c.Expires.Add(skew)) {
			return Claims{}, ErrInvalidToken
		}
		return c, nil
	}
	c, err := t.verify(raw, accessType)
	if err != nil {
		return Claims{}, err
	}
	t.mu.Lock()
	if t.verified == nil || len(t.verified) >= cacheLimit {
		t.verified = map[string]Claims{}
	}
	t.verified[raw] = c
	t.mu.Unlock()
	return c, nil
}

func (t *Tokens) sessionLive(id uuid.UUID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.live[id]
	return ok && t.cfg.Now().Before(until)
}

func (t *Tokens) rememberSession(id uuid.UUID, expires time.Time) {
	until := t.cfg.Now().Add(sessionCacheTTL)
	if expires.Before(until) {
		until = expires
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == nil || len(t.live) >= cacheLimit {
		t.live = map[uuid.UUID]time.Time{}
	}
	t.live[id] = until
}

// forget drops a session from the cache (it was revoked).
func (t *Tokens) forget(id uuid.UUID) {
	t.mu.Lock()
	delete(t.live, id)
	t.mu.Unlock()
}

// forgetAll drops every cached session (revocations may have been missed).
func (t *Tokens) forgetAll() {
	t.mu.Lock()
	t.live = nil
	t.mu.Unlock()
}

// Revoke ends a session, here at once and, through the bus, everywhere.
func (t *Tokens) Revoke(ctx context.Context, session uuid.UUID) error {
	err := t.cfg.Sessions.Revoke(ctx, session)
	t.ended(session)
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	t.announce(ctx, session)
	return nil
}

// announce tells the other processes that session ended.
func (t *Tokens) announce(ctx context.Context, session uuid.UUID) {
	if t.bus == nil {
		return
	}
	if err := t.bus.Publish(ctx, RevocationChannel, session.String()); err != nil {
		// The session is revoked; other processes believe their cache of
		// it for at most sessionCacheTTL.
		t.log.Error("announce session end", "err", err)
	}
}

// ended forgets a session and tells OnRevoke.
func (t *Tokens) ended(session uuid.UUID) {
	t.forget(session)
	if t.cfg.OnRevoke != nil {
		t.cfg.OnRevoke(session)
	}
}

// Listen hears the revocations of every process on bus, and announces this
// one's there. Call it once, before serving.
func (t *Tokens) Listen(bus Bus) {
	t.bus = bus
	bus.Subscribe(RevocationChannel, func(payload string) {
		if id, err := uuid.Parse(payload); err == nil {
			t.ended(id)
		}
	}, func() {
		// Revocations may have been announced while nobody listened.
		t.forgetAll()
		t.listeningOnce.Do(func() { close(t.listening) })
	})
}

// Listening is closed once Listen's bus is first listened to.
func (t *Tokens) Listening() <-chan struct{} { return t.listening }
