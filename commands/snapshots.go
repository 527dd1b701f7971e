package commands

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
)

// Snapshots stores aggregate snapshots, so that loading a long stream with
// nothing cached (after a restart, or once evicted) reads only the events
// after the snapshot. A snapshot is only an optimisation: losing one costs a
// longer read, never a wrong decision.
type Snapshots interface {
	// LoadSnapshot returns the stream's newest snapshot, if any.
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, bool, error)
	// SaveSnapshot stores s unless a snapshot of a later revision is stored.
	SaveSnapshot(ctx context.Context, stream string, s Snapshot) error
}

// Snapshot is an aggregate's state after the event at Revision, whose id is
// EventID: a snapshot whose event is not the stream's event at that revision
// (another log behind the same database) is ignored.
type Snapshot struct {
	Version  int
	Revision int64
	EventID  uuid.UUID
	State    json.RawMessage
}

// snapshotFrom returns the conversation state of a stored snapshot, or false
// when there is none that this code can use.
func (s *Service) snapshotFrom(ctx context.Context, stream string) (*domain.Conversation, Snapshot, bool) {
	if s.snaps == nil {
		return nil, Snapshot{}, false
	}
	snap, ok, err := s.snaps.LoadSnapshot(ctx, stream)
	if err != nil {
		s.log.Warn("snapshot: load failed; reading the whole stream", "stream", stream, "err", err)
		return nil, Snapshot{}, false
	}
	if !ok || snap.Version != domain.ConversationSnapshotVersion || snap.Revision < 0 {
		return nil, Snapshot{}, false
	}
	var cs domain.ConversationSnapshot
	if err := json.Unmarshal(snap.State, &cs); err != nil {
		s.log.Warn("snapshot: undecodable; reading the whole stream", "stream", stream, "err", err)
		return nil, Snapshot{}, false
	}
	return cs.Restore(), snap, true
}

// saveSnapshot stores the state at rev, the revision of event id. A failure
// is logged: the next load simply reads more.
func (s *Service) saveSnapshot(ctx context.Context, stream string, c *domain.Conversation, rev int64, id uuid.UUID) {
	if s.snaps == nil || rev < 0 || id == uuid.Nil {
		return
	}
	state, err := json.Marshal(c.Snapshot())
	if err == nil {
		err = s.snaps.SaveSnapshot(context.WithoutCancel(ctx), stream, Snapshot{
			Version: domain.ConversationSnapshotVersion, Revision: rev, EventID: id, State: state})
	}
	if err != nil {
		s.log.Warn("snapshot: save failed", "stream", stream, "revision", rev, "err", err)
	}
}

// appended records a conversation's state c after appending n events at
// revision prev (-1: a new stream) landed with rev as the last one's
// revision and id as its id: in the cache, and every snapshotEvery events as
// a snapshot. The cache keeps c itself: the caller changes it no more.
func (s *Service) appended(ctx context.Context, stream string, c *convState, prev int64, n int, rev int64, id uuid.UUID) {
	if rev != prev+int64(n) {
		// The store answered with an earlier append of these event ids
		// (a retry), elsewhere in the stream: c is not the state at rev.
		s.convs.drop(stream)
		return
	}
	s.convs.putIfNewer(stream, c, rev)
	if (prev+1)/s.snapshotEvery != (rev+1)/s.snapshotEvery {
		s.saveSnapshot(ctx, stream, c.conv, rev, id)
	}
}
