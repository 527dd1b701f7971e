package history

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// roomState is what the index keeps of a room after a block: no personal
// data (names and descriptions stay in the log, where forgetting their
// author reaches them; the state says which revision set them). The
// events of messages' lives are not applied (walk reads them): the
// state's LastMessageID stays unset.
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
// all, then the streams' reads together, one round trip for all of them
// on stores that read many streams at once. Room streams (rooms true) also
// get the room's state at the cut.
func (r *Reader) locateAll(ctx context.Context, streams []string, cut Cut, rooms bool) (map[string]located, error) {
	blocks, err := r.cfg.Blocks.Last(ctx, streams, cut)
	if err != nil {
		return nil, fmt.Errorf("history: index look-up: %w", err)
	}
	todo := make([]*locating, 0, len(streams))
	all := make([]*locating, 0, len(streams))
	for _, stream := range streams {
		f, ok := blocks[stream]
		if !ok {
			f.Past = -1
		}
		l, err := r.startLocating(ctx, stream, cut, rooms, f)
		if err != nil {
			return nil, err
		}
		all = append(all, l)
		if l.count > 0 {
			todo = append(todo, l)
		}
	}
	for len(todo) > 0 {
		reads := make([]eventstore.StreamRead, len(todo))
		for i, l := range todo {
			reads[i] = eventstore.StreamRead{Stream: l.stream, Dir: eventstore.Forwards, From: l.from, Count: l.count}
		}
		got, err := eventstore.ReadStreams(ctx, r.cfg.Log, reads)
		if err != nil {
			return nil, fmt.Errorf("history: read %d streams: %w", len(reads), err)
		}
		next := todo[:0]
		for i, l := range todo {
			done, err := r.feed(ctx, l, got[i])
			if err != nil {
				return nil, err
			}
			if !done {
				next = append(next, l)
			}
		}
		todo = next
	}
	out := make(map[string]located, len(all))
	var pending []Block
	for _, l := range all {
		out[l.stream] = l.loc
		pending = append(pending, l.pending...)
	}
	if len(pending) > 0 {
		if err := r.cfg.Blocks.Save(ctx, pending); err != nil {
			// Only a cache: the answer stands; the next reader reads more.
			r.cfg.Logger.Warn("history: save index blocks", "blocks", len(pending), "err", err)
		}
	}
	return out, nil
}

// locating is one stream's read from the block b (the last stored one the
// cut includes, when ok) to the cut, with the complete blocks it passed
// on the way, to be stored.
type locating struct {
	stream string
	cut    Cut
	room   bool
	b      Block
	ok     bool
	from   uint64 // the next read's first revision
	count  int    // and its length; 0: nothing to read
	// exact: the index said how many events the cut includes, and count
	// asks for exactly those.
	exact     bool
	loc       located
	marks     []Mark // of the events of loc.tail
	pending   []Block
	prevState []byte
}

// startLocating sets up the read of stream from where the index placed
// the cut. A block whose state this build cannot read makes the stream's
// blocks again.
func (r *Reader) startLocating(ctx context.Context, stream string, cut Cut, room bool, f Found) (*locating, error) {
	l := &locating{stream: stream, cut: cut, room: room, loc: located{rev: -1}, count: BlockSize + 1}
	if room {
		l.loc.state = newRoomState()
	}
	if f.HasBlock && room {
		state, good := decodeRoomState(f.Block.State)
		if !good {
			if err := r.cfg.Blocks.Drop(ctx, stream); err != nil {
				return nil, fmt.Errorf("history: drop blocks of %s: %w", stream, err)
			}
			return l, nil
		}
		l.loc.state = state
	}
	if f.HasBlock {
		l.b, l.ok, l.prevState = f.Block, true, f.Block.State
		l.from = uint64((f.Block.Index+1)*BlockSize - 1) // the block's last event, to check it is this log's
	}
	if f.Past >= 0 {
		l.exact, l.count = true, f.Past
		if l.ok {
			l.count++
		}
	}
	return l, nil
}

// feed takes the events of l's last read and reports whether l has
// reached the cut.
func (r *Reader) feed(ctx context.Context, l *locating, events []eventstore.RecordedEvent) (bool, error) {
	asked := l.count
	l.count = 8 * BlockSize
	if l.ok && l.from == uint64((l.b.Index+1)*BlockSize-1) {
		if len(events) == 0 || events[0].ID != l.b.LastID {
			// Blocks of another log behind this database: forget them and
			// read the stream from its start.
			r.cfg.Logger.Warn("history: index does not match the log; reading the stream again", "stream", l.stream)
			if err := r.cfg.Blocks.Drop(ctx, l.stream); err != nil {
				return false, fmt.Errorf("history: drop blocks of %s: %w", l.stream, err)
			}
			fresh, err := r.startLocating(ctx, l.stream, l.cut, l.room, Found{Past: -1})
			if err != nil {
				return false, err
			}
			*l = *fresh
			return false, nil
		}
		l.loc.rev = int64(events[0].Revision)
		events = events[1:]
		asked-- // the block's last event was asked for on top
	}
	if len(events) > 0 {
		l.from = events[len(events)-1].Revision + 1
	}
	for i, e := range events {
		at := eventTime(e)
		if !l.cut.includes(e.Position, at) {
			if !l.exact {
				// The read went past the cut: when it holds the rest of
				// the block, store that block too, so that the next reader
				// of a moment in it reads exactly up to its moment.
				if err := r.completeBlock(l, events[i:]); err != nil {
					return false, err
				}
			}
			return true, nil
		}
		if err := r.applyTo(l.loc.state, e, at); err != nil {
			return false, err
		}
		l.loc.rev = int64(e.Revision)
		l.loc.tail = append(l.loc.tail, e)
		l.marks = append(l.marks, Mark{Pos: e.Position, At: at})
		if (e.Revision+1)%BlockSize == 0 {
			l.closeBlock(l.loc.state, e, at)
			l.loc.tail = l.loc.tail[:0:0]
		}
	}
	return l.exact || len(events) < asked, nil
}

// applyTo applies e, recorded at at, to a room's state (nil for streams
// that are not rooms).
func (r *Reader) applyTo(state *roomState, e eventstore.RecordedEvent, at time.Time) error {
	if state == nil || messageLife(e.Type) {
		return nil
	}
	ev, _, known, err := r.cfg.Registry.DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if known {
		state.apply(ev, int64(e.Revision), at)
	}
	return nil
}

// closeBlock queues the block that ends with e for storing, with l's
// marks and the room's state after it.
func (l *locating) closeBlock(state *roomState, e eventstore.RecordedEvent, at time.Time) {
	blk := Block{Stream: l.stream, Index: int64(e.Revision / BlockSize), LastID: e.ID, Last: e.Position, LastAt: at, Marks: l.marks}
	if state != nil {
		if st := state.encode(); !bytes.Equal(st, l.prevState) {
			blk.State, l.prevState = st, st
		}
	}
	l.pending = append(l.pending, blk)
	l.marks = nil
}

// completeBlock finishes the block the cut falls in from rest, the events
// read past the cut, when they reach its end; the answer's state is left
// as it stood at the cut.
func (r *Reader) completeBlock(l *locating, rest []eventstore.RecordedEvent) error {
	need := BlockSize - len(l.marks)
	if len(rest) < need {
		return nil
	}
	var state *roomState
	if l.room {
		var ok bool
		if state, ok = decodeRoomState(l.loc.state.encode()); !ok {
			return nil
		}
		state.exists = l.loc.state.exists
	}
	for _, e := range rest[:need] {
		at := eventTime(e)
		if err := r.applyTo(state, e, at); err != nil {
			return err
		}
		l.marks = append(l.marks, Mark{Pos: e.Position, At: at})
	}
	last := rest[need-1]
	l.closeBlock(state, last, eventTime(last))
	return nil
}
