package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/auth"
)

// Sessions keeps login sessions in public.auth_sessions.
type Sessions struct{ db DB }

var _ auth.SessionStore = (*Sessions)(nil)

// NewSessions returns Sessions on db.
func NewSessions(db DB) *Sessions { return &Sessions{db: db} }

const createSession = `INSERT INTO public.auth_sessions (id, user_id, refresh_jti, expires_at) VALUES ($1, $2, $3, $4)`

// Create implements auth.SessionStore.
func (s *Sessions) Create(ctx context.Context, ss auth.Session) error {
	if _, err := s.db.Exec(ctx, createSession, ss.ID, ss.UserID, ss.RefreshJTI, ss.Expires); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// rotateRefresh moves a live session to its next refresh token id. Expiry is
// the database's clock, the one every process shares.
const rotateRefresh = `UPDATE public.auth_sessions SET refresh_jti = $3, expires_at = $4, rotated_at = now()
	WHERE id = $1 AND refresh_jti = $2 AND revoked_at IS NULL AND expires_at > now()`

// Rotate implements auth.SessionStore.
func (s *Sessions) Rotate(ctx context.Context, id, from, to uuid.UUID, expires time.Time) (bool, error) {
	tag, err := s.db.Exec(ctx, rotateRefresh, id, from, to, expires)
	if err != nil {
		return false, fmt.Errorf("rotate session: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// revokeReused revokes a live session whose refresh token jti is not the
// current one, if its last rotation is older than the grace ($3 seconds),
// both by the database's clock.
const revokeReused = `UPDATE public.auth_sessions SET revoked_at = now()
	WHERE id = $1 AND refresh_jti <> $2 AND revoked_at IS NULL AND expires_at > now()
	AND rotated_at <= now() - make_interval(secs => $3)`

// RevokeReused implements auth.SessionStore.
func (s *Sessions) RevokeReused(ctx context.Context, id, jti uuid.UUID, grace time.Duration) (bool, error) {
	tag, err := s.db.Exec(ctx, revokeReused, id, jti, grace.Seconds())
	if err != nil {
		return false, fmt.Errorf("revoke session of a reused refresh token: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

const sessionState = `SELECT revoked_at IS NOT NULL, expires_at FROM public.auth_sessions WHERE id = $1`

// State implements auth.SessionStore.
func (s *Sessions) State(ctx context.Context, id uuid.UUID) (bool, time.Time, error) {
	var revoked bool
	var expires time.Time
	err := s.db.QueryRow(ctx, sessionState, id).Scan(&revoked, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, time.Time{}, auth.ErrSessionNotFound
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("read session: %w", err)
	}
	return revoked, expires, nil
}

const revokeSession = `UPDATE public.auth_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`

// Revoke implements auth.SessionStore.
func (s *Sessions) Revoke(ctx context.Context, id uuid.UUID) error {
	if _, err := s.db.Exec(ctx, revokeSession, id); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}
