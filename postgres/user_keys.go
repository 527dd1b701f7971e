package postgres

import (
	"context"
	"fmt"

	"github.com/evchat/evchat/shred"
)

// UserKeys keeps the keys that seal each user's personal data in the log
// (migrations/core/0014_user_keys.sql).
type UserKeys struct{ db DB }

var _ shred.Keys = (*UserKeys)(nil)

// NewUserKeys returns UserKeys on db.
func NewUserKeys(db DB) *UserKeys { return &UserKeys{db: db} }

const loadUserKeys = `SELECT user_id, key, forgotten_at IS NOT NULL FROM user_keys WHERE user_id = ANY($1)`

// createUserKey commits in its own statement, before the append that needs
// the key. A key made concurrently by another process wins, and so does a
// forgotten marker: no key is ever made for a forgotten user.
const createUserKey = `INSERT INTO user_keys (user_id, key) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`

// forgetUserKey deletes the key bytes and marks the user forgotten (a user
// who never had a key, from a log older than the keys, is marked too), and
// tells every process, on commit, to drop its cached key.
const forgetUserKey = `WITH f AS (
		INSERT INTO user_keys (user_id, key, forgotten_at) VALUES ($1, NULL, now())
		ON CONFLICT (user_id) DO UPDATE SET key = NULL, forgotten_at = coalesce(user_keys.forgotten_at, now())
		RETURNING user_id)
	SELECT pg_notify($2, user_id::text) FROM f`

// Load implements shred.Keys.
func (k *UserKeys) Load(ctx context.Context, users []int64) (map[int64]shred.KeyState, error) {
	rows, err := k.db.Query(ctx, loadUserKeys, users)
	if err != nil {
		return nil, fmt.Errorf("load user keys: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]shred.KeyState, len(users))
	for rows.Next() {
		var id int64
		var st shred.KeyState
		if err := rows.Scan(&id, &st.Key, &st.Forgotten); err != nil {
			return nil, fmt.Errorf("load user keys: %w", err)
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load user keys: %w", err)
	}
	return out, nil
}

// Create implements shred.Keys.
func (k *UserKeys) Create(ctx context.Context, user int64, key []byte) (shred.KeyState, error) {
	if _, err := k.db.Exec(ctx, createUserKey, user, key); err != nil {
		return shred.KeyState{}, fmt.Errorf("create key of user %d: %w", user, err)
	}
	st, err := k.Load(ctx, []int64{user})
	if err != nil {
		return shred.KeyState{}, err
	}
	return st[user], nil
}

// Forget deletes user's key for ever and marks them forgotten; forgetting
// again is no error.
func (k *UserKeys) Forget(ctx context.Context, user int64) error {
	if _, err := k.db.Exec(ctx, forgetUserKey, user, shred.Channel); err != nil {
		return fmt.Errorf("forget key of user %d: %w", user, err)
	}
	return nil
}

// StreamSecret returns the server's secret for stream names (see
// shred.Options.StreamKey), making it on first use; concurrent first uses
// agree on one.
func StreamSecret(ctx context.Context, db DB) ([]byte, error) {
	fresh, err := shred.NewKey()
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(ctx, `INSERT INTO stream_secret (secret) VALUES ($1) ON CONFLICT (id) DO NOTHING`, fresh); err != nil {
		return nil, fmt.Errorf("stream secret: %w", err)
	}
	var secret []byte
	if err := db.QueryRow(ctx, `SELECT secret FROM stream_secret`).Scan(&secret); err != nil {
		return nil, fmt.Errorf("stream secret: %w", err)
	}
	return secret, nil
}
