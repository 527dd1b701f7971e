package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/commands"
)

// IDs hands out the API's integer ids from the sequences of schema ids, one
// per kind (migrations/core). They live outside the read model so that a
// rebuild never resets them.
type IDs struct{ db DB }

var _ commands.IDs = (*IDs)(nil)

// NewIDs returns IDs on db.
func NewIDs(db DB) *IDs { return &IDs{db: db} }

// The sequence is named by a parameter cast to regclass, so the statement
// stays one prepared statement for every kind.
const (
	nextID  = `SELECT nextval($1::regclass)`
	nextIDs = `SELECT nextval($1::regclass) FROM generate_series(1, $2)`
)

func sequence(kind commands.IDKind) string { return "ids." + string(kind) }

// Next implements commands.IDs.
func (s *IDs) Next(ctx context.Context, kind commands.IDKind) (int64, error) {
	var id int64
	if err := s.db.QueryRow(ctx, nextID, sequence(kind)).Scan(&id); err != nil {
		return 0, fmt.Errorf("next %s id: %w", kind, err)
	}
	return id, nil
}

// NextN implements commands.IDs: n ids in one round trip, ascending.
func (s *IDs) NextN(ctx context.Context, kind commands.IDKind, n int) ([]int64, error) {
	rows, err := s.db.Query(ctx, nextIDs, sequence(kind), n)
	if err != nil {
		return nil, fmt.Errorf("next %s ids: %w", kind, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("next %s ids: %w", kind, err)
	}
	return ids, nil
}
