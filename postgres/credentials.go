package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/commands"
)

// Credentials keeps password hashes in the write side's credentials table,
// out of the event log (migrations/core/0009_credentials.sql).
type Credentials struct{ db DB }

var _ commands.Credentials = (*Credentials)(nil)

// NewCredentials returns Credentials on db.
func NewCredentials(db DB) *Credentials { return &Credentials{db: db} }

// setCredential is idempotent: a registration retried with the same id
// writes the same row.
const setCredential = `INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)
	ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = now()`

const deleteCredential = `DELETE FROM credentials WHERE user_id = $1`

const passwordHash = `SELECT password_hash FROM credentials WHERE user_id = $1`

// Set implements commands.Credentials.
func (c *Credentials) Set(ctx context.Context, user int64, hash string) error {
	if _, err := c.db.Exec(ctx, setCredential, user, hash); err != nil {
		return fmt.Errorf("set credential of user %d: %w", user, err)
	}
	return nil
}

// Delete implements commands.Credentials.
func (c *Credentials) Delete(ctx context.Context, user int64) error {
	if _, err := c.db.Exec(ctx, deleteCredential, user); err != nil {
		return fmt.Errorf("delete credential of user %d: %w", user, err)
	}
	return nil
}

// PasswordHash returns a user's password hash; found is false when the
// user has none.
func (c *Credentials) PasswordHash(ctx context.Context, user int64) (hash string, found bool, err error) {
	err = c.db.QueryRow(ctx, passwordHash, user).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("credential of user %d: %w", user, err)
	}
	return hash, true, nil
}
