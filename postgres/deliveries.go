package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/commands"
)

var _ commands.UndeliveredLookup = (*Lookups)(nil)

// undelivered: messages of the room the receiver received and has not had
// delivered; the rest of ids (their own, sent before they joined, of
// another room, delivered already) are nothing to record.
const undelivered = `SELECT m.id FROM messages m
	WHERE m.conversation_id = $1 AND m.id = ANY($3) AND $2 = ANY(m.receivers) AND NOT $2 = ANY(m.delivered_to)
	ORDER BY m.id`

// Undelivered implements commands.UndeliveredLookup.
func (s *Lookups) Undelivered(ctx context.Context, conversation, receiver int64, ids []int64) ([]int64, error) {
	rows, err := s.db.Query(ctx, undelivered, conversation, receiver, ids)
	if err != nil {
		return nil, fmt.Errorf("undelivered: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("undelivered: %w", err)
	}
	return out, nil
}
