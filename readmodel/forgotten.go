package readmodel

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AttachmentsOf returns the keys of the attachment files of user's
// messages (to remove when the user is forgotten).
func (s *Store) AttachmentsOf(ctx context.Context, user int64) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT k.key
		  FROM messages m, LATERAL (VALUES (m.picture->>'key'), (m.video->>'key')) AS k(key)
		 WHERE m.sender_id = $1 AND k.key IS NOT NULL`, user)
	if err != nil {
		return nil, fmt.Errorf("attachments of user %d: %w", user, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("attachments of user %d: %w", user, err)
	}
	return keys, nil
}

// NamedByOthers returns a function that reports, of keys, those named by
// a message of someone other than user: content-addressed files are shared
// by everyone who uploaded the same bytes.
func (s *Store) NamedByOthers(user int64) func(ctx context.Context, keys []string) (map[string]bool, error) {
	return func(ctx context.Context, keys []string) (map[string]bool, error) {
		rows, err := s.db.Query(ctx, `SELECT DISTINCT a.key FROM attachments a
			JOIN messages m ON m.conversation_id = a.conversation_id AND (m.picture->>'key' = a.key OR m.video->>'key' = a.key)
			WHERE a.key = ANY($1) AND m.sender_id <> $2`, keys, user)
		if err != nil {
			return nil, fmt.Errorf("attachments named by others: %w", err)
		}
		named, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("attachments named by others: %w", err)
		}
		out := make(map[string]bool, len(named))
		for _, k := range named {
			out[k] = true
		}
		return out, nil
	}
}
