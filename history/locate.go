package history

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// roomState is what the index keeps of a room after a block: no personal
// data (names and descriptions stay in the log, where forgetting their
// author reaches them; the state says which revision set them).
type roomState struct {
	conv      *domain.Conversation
	exists    bool
	createdAt time.Time
	updatedAt time.Time
	// nameRev and descRev are the revisions of the events that set the
	// name and the description; -1: never set.
	nameRev, descRev int64
}

type roomStateJSON struct {
	V         int                         `json:"v"`
	Conv      domain.ConversationSnapshot `json:"conv"`
	CreatedAt time.Time                   `json:"created_at"`
	UpdatedAt time.Time                   `json:"updated_at"`
	NameRev   int64                       `json:"name_rev"`
	DescRev   int64                       `json:"desc_rev"`
}

// stateVersion is the encoding of roomState; blocks of another are read
// again from the log.
const stateVersion = 1

func newRoomState() *roomState {
	return &roomState{conv: &domain.Conversation{}, nameRev: -1, descRev: -1}
}

func (s *roomState) encode() json.RawMessage {
	snap := s.conv.Snapshot()
	snap.Name, snap.Description, snap.Invites = nil, nil, nil
	b, err := json.Marshal(roomStateJSON{V: stateVersion, Conv: snap, CreatedAt: s.createdAt, UpdatedAt: s.updatedAt,
		NameRev: s.nameRev, DescRev: s.descRev})
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return b
}

func decodeRoomState(b []byte) (*roomState, bool) {
	var j roomStateJSON
	if err := json.Unmarshal(b, &j); err != nil || j.V != stateVersion {
		return nil, false
	}
	return &roomState{conv: j.Conv.Restore(), exists: true, createdAt: j.CreatedAt, updatedAt: j.UpdatedAt,
		nameRev: j.NameRev, descRev: j.DescRev}, true
}

// apply evolves the state by one event of the room's stream, at its time.
func (s *roomState) apply(ev domain.Event, rev int64, at time.Time) {
	s.conv.Apply(ev)
	switch e := ev.(type) {
	case domain.ConversationCreated:
		s.exists, s.createdAt, s.updatedAt = true, at, at
		if e.Name != nil {
			s.nameRev = rev
		}
		if e.Description != nil {
			s.descRev = rev
		}
	case domain.ConversationUpdated:
		if e.Name != nil {
			s.nameRev = rev
		}
		if e.Description != nil {
			s.descRev = rev
		}
		s.touch(at)
	case domain.MemberJoined, domain.MemberLeft, domain.AdminPromoted:
		s.touch(at)
	}
}

// touch moves updated_at as the read model does (it never goes back).
func (s *roomState) touch(at time.Time) {
	if at.After(s.updatedAt) {
		s.updatedAt = at
	}
}

// located is where a cut falls in one stream.
type located struct {
	// rev is the revision of the stream's last event the cut includes;
	// -1 when it includes none (or the stream has none).
	rev int64
	// tail are the included events from the last block boundary up to
	// rev, in stream order: the events a reader already holds.
	tail []eventstore.RecordedEvent
	// state is a room's state at rev (room streams only).
	state *roomState
}

// locateAll finds the cut in each stream: one look-up of the index for
// all, then each stream's reads, a few at a time. Room streams (rooms
// true) also get the room's state at the cut.
func (r *Reader) locateAll(ctx context.Context, streams []string, cut Cut, rooms bool) (map[string]located, error) {
	blocks, err := r.cfg.Blocks.Last(ctx, streams, cut)
	if err != nil {
		return nil, fmt.Errorf("history: index look-up: %w", err)
	}
	out := make(map[string]located, len(streams))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	sem := make(chan struct{}, 4)
	for _, stream := range streams {
		b, ok := blocks[stream]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			loc, err := r.locate(ctx, stream, cut, rooms, b, ok)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out[stream] = loc
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// locate reads a stream forward from the block b (the last stored one the
// cut includes, when ok) to the cut, storing the complete blocks it reads
// on the way.
func (r *Reader) locate(ctx context.Context, stream string, cut Cut, room bool, b Block, ok bool) (located, error) {
	var state *roomState
	if room {
		state = newRoomState()
	}
	from := uint64(0)
	if ok {
		from = uint64((b.Index+1)*BlockSize - 1) // the block's last event, to check it is this log's
		if room {
			var good bool
			if state, good = decodeRoomState(b.State); !good {
				// A state this build cannot read: the stream's blocks are
				// made again.
				if err := r.cfg.Blocks.Drop(ctx, stream); err != nil {
					return located{}, fmt.Errorf("history: drop blocks of %s: %w", stream, err)
				}
				return r.locate(ctx, stream, cut, room, Block{}, false)
			}
		}
	}
	loc := located{rev: -1, state: state}
	var pending []Block
	prevState := []byte(nil)
	if ok {
		prevState = b.State
	}
	count := BlockSize + 1
	for done := false; !done; count = 8 * BlockSize {
		events, err := r.cfg.Log.ReadStream(ctx, stream, eventstore.Forwards, from, count)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			events, err = nil, nil
		}
		if err != nil {
			return located{}, fmt.Errorf("history: read %s: %w", stream, err)
		}
		if ok && from == uint64((b.Index+1)*BlockSize-1) {
			if len(events) == 0 || events[0].ID != b.LastID {
				// Blocks of another log behind this database: forget them
				// and read the stream from its start.
				r.cfg.Logger.Warn("history: index does not match the log; reading the stream again", "stream", stream)
				if err := r.cfg.Blocks.Drop(ctx, stream); err != nil {
					return located{}, fmt.Errorf("history: drop blocks of %s: %w", stream, err)
				}
				return r.locate(ctx, stream, cut, room, Block{}, false)
			}
			loc.rev = int64(events[0].Revision)
			events = events[1:]
			count-- // the block's last event was asked for on top
		}
		for _, e := range events {
			at := eventTime(e)
			if !cut.includes(e.Position, at) {
				done = true
				break
			}
			if room {
				ev, _, known, err := r.cfg.Registry.DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
				if err != nil {
					return located{}, fmt.Errorf("history: %w", err)
				}
				if known {
					state.apply(ev, int64(e.Revision), at)
				}
			}
			loc.rev = int64(e.Revision)
			loc.tail = append(loc.tail, e)
			if (e.Revision+1)%BlockSize == 0 {
				blk := Block{Stream: stream, Index: int64(e.Revision / BlockSize), LastID: e.ID, Last: e.Position, LastAt: at}
				if room {
					if st := state.encode(); !bytes.Equal(st, prevState) {
						blk.State, prevState = st, st
					}
				}
				pending = append(pending, blk)
				loc.tail = loc.tail[:0:0]
			}
		}
		if len(events) < count {
			done = true
		}
		if len(events) > 0 {
			from = events[len(events)-1].Revision + 1
		}
	}
	if len(pending) > 0 {
		if err := r.cfg.Blocks.Save(ctx, pending); err != nil {
			// Only a cache: the answer stands; the next reader reads more.
			r.cfg.Logger.Warn("history: save index blocks", "stream", stream, "err", err)
		}
	}
	return loc, nil
}
