package http

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/crypto/bcrypt"
)

// Token types, in the "typ" claim; an access token is never accepted as a
// refresh token or the other way round.
const (
	accessType  = "access"
	refreshType = "refresh"
	issuer      = "evchat"
)

// LoadOrCreateSigningKey reads an Ed25519 private key (PKCS #8 PEM) from
// path, creating it with mode 0600 when the file does not exist.
func LoadOrCreateSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("encode signing key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create key folder: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateSigningKey(path) // another process made it first
		}
		if err != nil {
			return nil, fmt.Errorf("write signing key: %w", err)
		}
		if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
			f.Close()
			return nil, fmt.Errorf("write signing key: %w", err)
		}
		return priv, f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("read signing key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("read signing key %s: not an Ed25519 key", path)
	}
	return priv, nil
}

// tokens issues and checks JWTs and the sessions behind them. A session is
// one login: its refresh token rotates on every refresh, and revoking it
// (logout) ends its access and refresh tokens at once.
type tokens struct {
	pool       *pgxpool.Pool
	priv       ed25519.PrivateKey
	pub        ed25519.PublicKey
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	// onRevoke tells the other processes (and this one's sockets).
	onRevoke func(ctx context.Context, session uuid.UUID)

	mu       sync.Mutex
	verified map[string]claims
	live     map[uuid.UUID]time.Time
}

type tokenPair struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh"`
}

// claims are what a verified token tells.
type claims struct {
	UserID    int64
	SessionID uuid.UUID
	ID        uuid.UUID // jti
	Expires   time.Time
}

func (t *tokens) sign(typ string, user int64, session, jti uuid.UUID, ttl time.Duration) (string, error) {
	now := t.now()
	tok, err := jwt.NewBuilder().
		Issuer(issuer).Subject(strconv.FormatInt(user, 10)).
		IssuedAt(now).NotBefore(now).Expiration(now.Add(ttl)).
		JwtID(jti.String()).Claim("sid", session.String()).Claim("typ", typ).
		Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, t.priv))
	return string(b), err
}

// verify checks signature (EdDSA only), time claims, issuer and type.
func (t *tokens) verify(raw, typ string) (claims, error) {
	tok, err := jwt.Parse([]byte(raw),
		jwt.WithKey(jwa.EdDSA, t.pub), jwt.WithValidate(true), jwt.WithIssuer(issuer),
		jwt.WithClock(jwt.ClockFunc(t.now)), jwt.WithAcceptableSkew(5*time.Second),
		jwt.WithClaimValue("typ", typ))
	if err != nil {
		return claims{}, errBadToken
	}
	var c claims
	c.UserID, err = strconv.ParseInt(tok.Subject(), 10, 64)
	if err != nil {
		return claims{}, errBadToken
	}
	sid, _ := tok.Get("sid")
	s, _ := sid.(string)
	if c.SessionID, err = uuid.Parse(s); err != nil {
		return claims{}, errBadToken
	}
	if c.ID, err = uuid.Parse(tok.JwtID()); err != nil {
		return claims{}, errBadToken
	}
	c.Expires = tok.Expiration()
	return c, nil
}

// login opens a session and returns its first token pair.
func (t *tokens) login(ctx context.Context, user int64) (tokenPair, error) {
	session, refreshJTI := uuid.New(), uuid.New()
	if _, err := t.pool.Exec(ctx, `INSERT INTO public.auth_sessions (id, user_id, refresh_jti, expires_at) VALUES ($1, $2, $3, $4)`,
		session, user, refreshJTI, t.now().Add(t.refreshTTL)); err != nil {
		return tokenPair{}, fmt.Errorf("open session: %w", err)
	}
	return t.pair(user, session, refreshJTI)
}

func (t *tokens) pair(user int64, session, refreshJTI uuid.UUID) (tokenPair, error) {
	access, err := t.sign(accessType, user, session, uuid.New(), t.accessTTL)
	if err != nil {
		return tokenPair{}, err
	}
	refresh, err := t.sign(refreshType, user, session, refreshJTI, t.refreshTTL)
	return tokenPair{Access: access, Refresh: refresh}, err
}

// errRefreshReused is a refresh token used again after it was rotated away
// (or after logout): a 401 like any dead token, which the handler also logs.
// The session's current tokens keep working, as the contract has it: two
// clients of one session refreshing at once must not log each other out.
var errRefreshReused = fmt.Errorf("refresh token reused: %w", errBadToken)

// refresh rotates a session's refresh token.
func (t *tokens) refresh(ctx context.Context, raw string) (tokenPair, error) {
	c, err := t.verify(raw, refreshType)
	if err != nil {
		return tokenPair{}, err
	}
	next := uuid.New()
	tag, err := t.pool.Exec(ctx, `UPDATE public.auth_sessions SET refresh_jti = $3, expires_at = $4
		WHERE id = $1 AND refresh_jti = $2 AND revoked_at IS NULL AND expires_at > now()`,
		c.SessionID, c.ID, next, t.now().Add(t.refreshTTL))
	if err != nil {
		return tokenPair{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return tokenPair{}, errRefreshReused
	}
	return t.pair(c.UserID, c.SessionID, next)
}

// authenticate verifies an access token and that its session is live.
//
// Two caches keep this off the hot path. Verified tokens: verifying the same
// token string always gives the same claims, so its signature is checked
// once (the expiry still on every use). Live sessions: a session known live
// is believed for at most sessionCacheTTL; a logout drops it at once here
// and, through the WebSocket control channel, on every other process (which
// also drop all they know whenever that channel reconnects).
func (t *tokens) authenticate(ctx context.Context, raw string) (claims, error) {
	c, err := t.verifyCached(raw)
	if err != nil {
		return claims{}, err
	}
	if t.sessionLive(c.SessionID) {
		return c, nil
	}
	var revoked bool
	var expires time.Time
	err = t.pool.QueryRow(ctx, `SELECT revoked_at IS NOT NULL, expires_at FROM public.auth_sessions WHERE id = $1`, c.SessionID).Scan(&revoked, &expires)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (revoked || !expires.After(t.now()))) {
		return claims{}, errBadToken
	}
	if err != nil {
		return claims{}, fmt.Errorf("check session: %w", err)
	}
	t.rememberSession(c.SessionID, expires)
	return c, nil
}

// sessionCacheTTL bounds how long a session is believed live without asking
// the database.
const sessionCacheTTL = 5 * time.Second

// cacheLimit bounds each cache; a full cache is emptied and starts over.
const cacheLimit = 50_000

func (t *tokens) verifyCached(raw string) (claims, error) {
	t.mu.Lock()
	c, ok := t.verified[raw]
	t.mu.Unlock()
	if ok {
		if !t.now().Before(c.Expires.Add(5 * time.Second)) { // the skew verify allows
			return claims{}, errBadToken
		}
		return c, nil
	}
	c, err := t.verify(raw, accessType)
	if err != nil {
		return claims{}, err
	}
	t.mu.Lock()
	if t.verified == nil || len(t.verified) >= cacheLimit {
		t.verified = map[string]claims{}
	}
	t.verified[raw] = c
	t.mu.Unlock()
	return c, nil
}

func (t *tokens) sessionLive(id uuid.UUID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.live[id]
	return ok && t.now().Before(until)
}

func (t *tokens) rememberSession(id uuid.UUID, expires time.Time) {
	until := t.now().Add(sessionCacheTTL)
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
func (t *tokens) forget(id uuid.UUID) {
	t.mu.Lock()
	delete(t.live, id)
	t.mu.Unlock()
}

// forgetAll drops every cached session (revocations may have been missed).
func (t *tokens) forgetAll() {
	t.mu.Lock()
	t.live = nil
	t.mu.Unlock()
}

// revoke ends a session, here and, through onRevoke, everywhere.
func (t *tokens) revoke(ctx context.Context, session uuid.UUID) error {
	_, err := t.pool.Exec(ctx, `UPDATE public.auth_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, session)
	t.forget(session)
	if err == nil && t.onRevoke != nil {
		t.onRevoke(ctx, session)
	}
	return err
}

// bcryptHasher hashes passwords with bcrypt.
type bcryptHasher struct {
	cost int
	// dummy is compared against when a username does not exist, so a login
	// takes the same time either way: it has the same cost as real hashes.
	dummy []byte
}

func newBcryptHasher(cost int) bcryptHasher {
	dummy, _ := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), cost)
	return bcryptHasher{cost: cost, dummy: dummy}
}

// bcryptInput is what bcrypt hashes for a password. bcrypt reads at most 72
// bytes (and GenerateFromPassword refuses more), so a longer password is
// pre-hashed, base64-encoded to keep NUL bytes out. No stored hash has a
// longer input, so shorter passwords keep their hashes.
func bcryptInput(password string) []byte {
	if len(password) <= 72 {
		return []byte(password)
	}
	sum := sha256.Sum256([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

func (h bcryptHasher) Hash(password string) (string, error) {
	b, err := bcrypt.GenerateFromPassword(bcryptInput(password), h.cost)
	return string(b), err
}

// compare checks password against hash; with a nil hash it compares against
// the dummy hash and fails.
func (h bcryptHasher) compare(hash []byte, password string) error {
	if hash == nil {
		_ = bcrypt.CompareHashAndPassword(h.dummy, bcryptInput(password))
		return bcrypt.ErrMismatchedHashAndPassword
	}
	return bcrypt.CompareHashAndPassword(hash, bcryptInput(password))
}

// throttle slows down repeated failed logins per username and per address.
type throttle struct {
	pool       *pgxpool.Pool
	window     time.Duration
	perUser    int
	perAddress int
}

// check returns a *rateLimited error when subject has failed too often.
func (th *throttle) check(ctx context.Context, username, addr string) error {
	var userFails, addrFails int
	var oldest *time.Time
	err := th.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE subject = $1), count(*) FILTER (WHERE subject = $2), min(failed_at)
		FROM public.login_failures WHERE subject IN ($1, $2) AND failed_at > now() - $3::interval`,
		"user:"+strings.ToLower(username), "addr:"+addr, th.window.String()).Scan(&userFails, &addrFails, &oldest)
	if err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	if userFails >= th.perUser || addrFails >= th.perAddress {
		wait := th.window
		if oldest != nil {
			wait = time.Until(oldest.Add(th.window))
		}
		return &rateLimited{retryAfter: max(1, int(wait.Seconds()+0.999))}
	}
	return nil
}

func (th *throttle) fail(ctx context.Context, username, addr string) error {
	_, err := th.pool.Exec(ctx, `INSERT INTO public.login_failures (subject) VALUES ($1), ($2)`,
		"user:"+strings.ToLower(username), "addr:"+addr)
	return err
}

func (th *throttle) succeed(ctx context.Context, username string) error {
	_, err := th.pool.Exec(ctx, `DELETE FROM public.login_failures WHERE subject = $1 OR failed_at < now() - $2::interval`,
		"user:"+strings.ToLower(username), th.window.String())
	return err
}

// ctxKey is the type of the context keys of this package.
type ctxKey int

const userKey ctxKey = iota

// bearer extracts the access token of a request: the Authorization header,
// then (for WebSocket upgrades, which browsers cannot give headers) the
// token query parameter or the chat_access cookie.
func bearer(c echo.Context, allowQueryAndCookie bool) string {
	if h := c.Request().Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if !allowQueryAndCookie {
		return ""
	}
	if tok := c.QueryParam("token"); tok != "" {
		return tok
	}
	if ck, err := c.Cookie(accessCookie); err == nil {
		return ck.Value
	}
	return ""
}

const accessCookie = "chat_access"

// requireAuth authenticates a request with its Bearer token.
func (s *Server) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw := bearer(c, false)
		if raw == "" {
			if c.Request().Header.Get("Authorization") != "" {
				return errBadToken
			}
			return errNotAuthenticated
		}
		cl, err := s.tokens.authenticate(c.Request().Context(), raw)
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), userKey, cl)))
		return next(c)
	}
}

// caller returns the authenticated caller of a request.
func caller(c echo.Context) claims {
	cl, _ := c.Request().Context().Value(userKey).(claims)
	return cl
}
