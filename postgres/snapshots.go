package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/commands"
)

// Snapshots keeps aggregate snapshots in public.snapshots, one per stream.
type Snapshots struct{ db DB }

var _ commands.Snapshots = (*Snapshots)(nil)

// NewSnapshots returns Snapshots on db.
func NewSnapshots(db DB) *Snapshots { return &Snapshots{db: db} }

const loadSnapshot = `SELECT version, revision, event_id, state FROM public.snapshots WHERE stream_id = $1`

// saveSnapshot replaces a snapshot of an earlier revision, or one in
// another version of the state's encoding (which this build cannot read).
const saveSnapshot = `INSERT INTO public.snapshots AS s (stream_id, version, revision, event_id, state)
	VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, revision = excluded.revision,
		event_id = excluded.event_id, state = excluded.state, taken_at = now()
	WHERE s.revision < excluded.revision OR s.version <> excluded.version`

// LoadSnapshot implements commands.Snapshots.
func (s *Snapshots) LoadSnapshot(ctx context.Context, stream string) (commands.Snapshot, bool, error) {
	var snap commands.Snapshot
	err := s.db.QueryRow(ctx, loadSnapshot, stream).Scan(&snap.Version, &snap.Revision, &snap.EventID, &snap.State)
	if errors.Is(err, pgx.ErrNoRows) {
		return snap, false, nil
	}
	if err != nil {
		return snap, false, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	return snap, true, nil
}

// SaveSnapshot implements commands.Snapshots.
func (s *Snapshots) SaveSnapshot(ctx context.Context, stream string, snap commands.Snapshot) error {
	if _, err := s.db.Exec(ctx, saveSnapshot, stream, snap.Version, snap.Revision, snap.EventID, string(snap.State)); err != nil {
		return fmt.Errorf("save snapshot of %s: %w", stream, err)
	}
	return nil
}
