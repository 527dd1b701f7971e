// Package auth is who a request is: access and refresh tokens (EdDSA JWTs),
// the sessions behind them with the caches that keep checking them off the
// hot path, password hashing, and login throttling.
//
// It keeps nothing itself: sessions and login failures live behind the
// ports it declares (SessionStore, AttemptStore; package postgres implements
// them), and a logout reaches every process through a Bus (wired to the
// process's one LISTEN connection), not through the WebSocket hub.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
)

// Errors of authentication, in the contract's words.
var (
	// ErrInvalidToken is any token that is not a live one of the right
	// type: forged, expired, of a revoked session, or an access token used
	// to refresh.
	ErrInvalidToken = domain.Errorf(domain.KindUnauthorized, "Given token not valid for any token type")
	// ErrRefreshReused is a refresh token used again after it was rotated
	// away (or after logout): a 401 like any dead token, worth a log line.
	// Later than Config.ReuseGrace after the rotation, it also ends the
	// session.
	ErrRefreshReused = fmt.Errorf("refresh token reused: %w", ErrInvalidToken)
	// ErrSessionNotFound is what a SessionStore answers for an unknown id.
	ErrSessionNotFound = errors.New("auth: no such session")
)

// Throttled is a refusal that says when to come back.
type Throttled struct {
	RetryAfter time.Duration
}

func (t *Throttled) Error() string { return "Request was throttled." }

// Session is one login as stored: its current refresh token's id rotates on
// every refresh.
type Session struct {
	ID         uuid.UUID
	UserID     int64
	RefreshJTI uuid.UUID
	Expires    time.Time
}

// SessionStore keeps sessions. Its clock decides expiry in Rotate, so that
// every process agrees.
type SessionStore interface {
	Create(ctx context.Context, s Session) error
	// Rotate replaces the refresh token id from with to and moves the
	// expiry, if the session is live and its refresh token id is from; it
	// reports whether it did.
	Rotate(ctx context.Context, id, from, to uuid.UUID, expires time.Time) (bool, error)
	// RevokeReused revokes a live session whose current refresh token id
	// is not jti and whose last rotation is more than grace ago; it reports
	// whether it did.
	RevokeReused(ctx context.Context, id, jti uuid.UUID, grace time.Duration) (bool, error)
	// State returns whether a session is revoked and when it expires, or
	// ErrSessionNotFound.
	State(ctx context.Context, id uuid.UUID) (revoked bool, expires time.Time, err error)
	// Revoke ends a session; revoking a revoked or unknown one is no error.
	Revoke(ctx context.Context, id uuid.UUID) error
}

// Bus carries revocations between processes (this one included).
// Subscribe's onReady runs each time the channel is listened to (the first
// time and after every reconnect): notices sent meanwhile are lost. Both
// callbacks must return quickly.
type Bus interface {
	Publish(ctx context.Context, channel, payload string) error
	Subscribe(channel string, onMessage func(payload string), onReady func())
}

// RevocationChannel carries the ids of revoked sessions between processes.
const RevocationChannel = "evchat_auth"
