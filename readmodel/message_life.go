package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Life is what a message's life after its send adds to it: a reply's
// target, its last edit, its deletion (a tombstone: no text, no
// attachments) and its reactions.
type Life struct {
	ReplyTo   *int64
	EditedAt  *time.Time
	DeletedAt *time.Time
	// Reactions maps each emoji to the users who put it on, ascending;
	// never nil.
	Reactions map[string][]int64
}

// lifeColumns are Life's columns of a message m, after messageColumns'.
const lifeColumns = `m.reply_to, m.edited_at, m.deleted_at,
	(SELECT jsonb_object_agg(r.emoji, r.users) FROM (
		SELECT emoji, array_agg(user_id ORDER BY user_id) AS users FROM reactions
		 WHERE message_id = m.id GROUP BY emoji) r)`

func (l *Life) scanReactions(b []byte) error {
	l.Reactions = map[string][]int64{}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, &l.Reactions); err != nil {
		return fmt.Errorf("reactions: %w", err)
	}
	return nil
}

// Version is one text of a message: the text as sent (At its send, By its
// sender), then each edit's. Text is nil once the message is deleted.
type Version struct {
	Text *string
	At   time.Time
	By   int64
}

// messageHistory lists the text as sent, then every edit in log order.
const messageHistory = `SELECT v.text, v.at, v.by FROM (
		SELECT 0 AS n, 0::bigint AS c, 0::bigint AS p,
		       CASE WHEN m.deleted_at IS NULL THEN coalesce(m.original_text, m.text) END AS text,
		       m.created_at AS at, m.sender_id AS by
		  FROM messages m WHERE m.id = $1
		UNION ALL
		SELECT 1, e.commit_pos, e.prepare_pos, e.text, e.edited_at, e.editor_id
		  FROM message_edits e WHERE e.message_id = $1) v
	ORDER BY v.n, v.c, v.p`

// MessageHistory returns the versions of a message's text, oldest first.
// ErrNotFound when there is no such message.
func (s *Store) MessageHistory(ctx context.Context, id int64) ([]Version, error) {
	rows, err := s.db.Query(ctx, messageHistory, id)
	if err != nil {
		return nil, fmt.Errorf("message history: %w", err)
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Version, error) {
		var v Version
		err := r.Scan(&v.Text, &v.At, &v.By)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("message history: %w", err)
	}
	if len(vs) == 0 {
		return nil, ErrNotFound
	}
	return vs, nil
}
