package chatd_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/migrations"
)

// userKeyRow is a row of the user_keys table; User 0 is the stream secret.
type userKeyRow struct {
	User      int64
	Key       []byte
	Forgotten *time.Time
}

// userKeyRows reads the key table, as a backup would.
func userKeyRows(t testing.TB, s *testServer) []userKeyRow {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT user_id, key, forgotten_at FROM user_keys`)
	if err != nil {
		t.Fatalf("read user keys: %v", err)
	}
	defer rows.Close()
	var out []userKeyRow
	for rows.Next() {
		var r userKeyRow
		if err := rows.Scan(&r.User, &r.Key, &r.Forgotten); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var secret []byte
	if err := s.Pool().QueryRow(context.Background(), `SELECT secret FROM stream_secret`).Scan(&secret); err != nil {
		t.Fatalf("read the stream secret: %v", err)
	}
	return append(out, userKeyRow{Key: secret})
}

// restoreUserKeys migrates the database of cfg and writes keys into it, as
// a restore from a backup does before the server starts.
func restoreUserKeys(t testing.TB, cfg chatd.Config, keys []userKeyRow) {
	t.Helper()
	ctx := context.Background()
	pool, _, err := chatd.OpenDatabase(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.User == 0 {
			if _, err := pool.Exec(ctx, `INSERT INTO stream_secret (secret) VALUES ($1)`, k.Key); err != nil {
				t.Fatalf("restore the stream secret: %v", err)
			}
			continue
		}
		if _, err := pool.Exec(ctx, `INSERT INTO user_keys (user_id, key, forgotten_at) VALUES ($1, $2, $3)`, k.User, k.Key, k.Forgotten); err != nil {
			t.Fatalf("restore key of user %d: %v", k.User, err)
		}
	}
}
