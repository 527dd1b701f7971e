package postgres

import (
	"context"
	"fmt"

	"github.com/evchat/evchat/auth"
)

// Forgetting is the write side's part in forgetting a user, beside their
// key (UserKeys.Forget) and their credential (Credentials.Delete).
type Forgetting struct{ db DB }

// NewForgetting returns Forgetting on db.
func NewForgetting(db DB) *Forgetting { return &Forgetting{db: db} }

// revokeUserSessions ends every session of a user and tells every process
// on commit, as a logout does (auth.RevocationChannel): their sockets close.
const revokeUserSessions = `WITH r AS (
		UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING id)
	SELECT count(pg_notify($2, id::text)) FROM r`

// deleteSnapshotsBy deletes the snapshots of the rooms a user created:
// they hold the room's name and description in plaintext. Snapshots are
// only an optimisation; the next load reads the stream (through the
// shredder) and takes a new one.
const deleteSnapshotsBy = `DELETE FROM snapshots WHERE (state->>'created_by')::bigint = $1`

// RevokeSessions ends every session of user and returns how many were live.
func (f *Forgetting) RevokeSessions(ctx context.Context, user int64) (int64, error) {
	var n int64
	if err := f.db.QueryRow(ctx, revokeUserSessions, user, auth.RevocationChannel).Scan(&n); err != nil {
		return 0, fmt.Errorf("revoke sessions of user %d: %w", user, err)
	}
	return n, nil
}

// DeleteSnapshots deletes the snapshots that hold user's personal data.
func (f *Forgetting) DeleteSnapshots(ctx context.Context, user int64) error {
	if _, err := f.db.Exec(ctx, deleteSnapshotsBy, user); err != nil {
		return fmt.Errorf("delete snapshots of user %d: %w", user, err)
	}
	return nil
}
