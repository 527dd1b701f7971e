package readmodel

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CoMembers returns the users who share a room with user, ascending (user
// among them when they are in any room).
func (s *Store) CoMembers(ctx context.Context, user int64) ([]int64, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT o.user_id FROM members me
		JOIN members o ON o.conversation_id = me.conversation_id
		WHERE me.user_id = $1 ORDER BY o.user_id`, user)
	if err != nil {
		return nil, fmt.Errorf("co-members: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("co-members: %w", err)
	}
	return out, nil
}

// SharesRoom reports whether users a and b are members of one room.
func (s *Store) SharesRoom(ctx context.Context, a, b int64) (bool, error) {
	var shared bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members x
		JOIN members y ON y.conversation_id = x.conversation_id AND y.user_id = $2
		WHERE x.user_id = $1)`, a, b).Scan(&shared)
	if err != nil {
		return false, fmt.Errorf("shares room: %w", err)
	}
	return shared, nil
}
