package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/commands"
)

// Lookups answers the commands' questions from the read-model tables, found
// through the connection's search_path. The answers lag the log by however
// far the projection is behind: see commands.ProjectedLookups.
type Lookups struct{ db DB }

var _ commands.ProjectedLookups = (*Lookups)(nil)

// NewLookups returns Lookups on db.
func NewLookups(db DB) *Lookups { return &Lookups{db: db} }

const usernameTaken = `SELECT EXISTS (SELECT 1 FROM users WHERE username_key = $1)`

// missingUsers: the alias t(id) matters; a bare "id" inside the subquery
// would be u.id, and every id would count as existing.
const missingUsers = `SELECT DISTINCT t.id FROM unnest($1::bigint[]) AS t(id)
	WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.id) ORDER BY t.id`

// receiptTargets: a message is unread for the reader when they received it
// (a receiver other than its sender) and are not in its read_by; one they
// did not receive (their own, or sent before they joined) is in the room
// but nothing to mark.
const receiptTargets = `SELECT m.id, m.sender_id <> $2 AND $2 = ANY(m.receivers) AND NOT $2 = ANY(m.read_by)
	FROM messages m WHERE m.conversation_id = $1 AND m.id = ANY($3) ORDER BY m.id`

// UsernameTaken implements commands.ProjectedLookups.
func (s *Lookups) UsernameTaken(ctx context.Context, lower string) (bool, error) {
	var taken bool
	if err := s.db.QueryRow(ctx, usernameTaken, lower).Scan(&taken); err != nil {
		return false, fmt.Errorf("username taken: %w", err)
	}
	return taken, nil
}

// MissingUsers implements commands.ProjectedLookups.
func (s *Lookups) MissingUsers(ctx context.Context, ids []int64) ([]int64, error) {
	rows, err := s.db.Query(ctx, missingUsers, ids)
	if err != nil {
		return nil, fmt.Errorf("missing users: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("missing users: %w", err)
	}
	return missing, nil
}

// ReceiptTargets implements commands.ProjectedLookups.
func (s *Lookups) ReceiptTargets(ctx context.Context, conversation, reader int64, ids []int64) (inRoom, unread []int64, err error) {
	rows, err := s.db.Query(ctx, receiptTargets, conversation, reader, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("receipt targets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var u bool
		if err := rows.Scan(&id, &u); err != nil {
			return nil, nil, fmt.Errorf("receipt targets: %w", err)
		}
		inRoom = append(inRoom, id)
		if u {
			unread = append(unread, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("receipt targets: %w", err)
	}
	return inRoom, unread, nil
}
