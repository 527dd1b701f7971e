package readmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PastRooms lists every room the user has ever been a member of (time
// travel looks through them for the rooms of a moment).
func (s *Store) PastRooms(ctx context.Context, user int64) ([]int64, error) {
	rows, err := s.db.Query(ctx, `SELECT conversation_id FROM past_members WHERE user_id = $1 ORDER BY conversation_id`, user)
	if err != nil {
		return nil, fmt.Errorf("past rooms: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("past rooms: %w", err)
	}
	return ids, nil
}

// MessageRoom returns the room of a message; ok false when there is no
// message with that id.
func (s *Store) MessageRoom(ctx context.Context, id int64) (int64, bool, error) {
	var room int64
	err := s.db.QueryRow(ctx, `SELECT conversation_id FROM messages WHERE id = $1`, id).Scan(&room)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("message room: %w", err)
	}
	return room, true, nil
}
