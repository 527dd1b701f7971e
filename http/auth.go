package http

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/auth"
)

// Tokens are the sessions the API opens and checks (package auth).
type Tokens interface {
	Login(ctx context.Context, user int64) (auth.Pair, error)
	Refresh(ctx context.Context, raw string) (auth.Pair, error)
	Authenticate(ctx context.Context, raw string) (auth.Claims, error)
	Revoke(ctx context.Context, session uuid.UUID) error
	AccessTTL() time.Duration
}

// LoginThrottle counts login attempts before their password is checked,
// refusing with *auth.Throttled; a right password gives the attempt back.
type LoginThrottle interface {
	Begin(ctx context.Context, username, addr string) error
	Succeeded(ctx context.Context, username, addr string)
}

// Passwords hashes and checks passwords; Compare with a nil hash does the
// work of a real comparison and fails.
type Passwords interface {
	Hash(password string) (string, error)
	Compare(hash []byte, password string) error
}

// Credentials reads the password hashes that registration stores outside
// the event log; found is false for a user without one.
type Credentials interface {
	PasswordHash(ctx context.Context, user int64) (hash string, found bool, err error)
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
				return auth.ErrInvalidToken
			}
			return errNotAuthenticated
		}
		cl, err := s.tokens.Authenticate(c.Request().Context(), raw)
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), userKey, cl)))
		if readsModel(c) {
			if err := s.readsOwnWrites(c, cl.UserID); err != nil {
				return err
			}
		}
		return next(c)
	}
}

// caller returns the authenticated caller of a request.
func caller(c echo.Context) auth.Claims {
	cl, _ := c.Request().Context().Value(userKey).(auth.Claims)
	return cl
}
