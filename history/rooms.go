package history

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/readmodel"
)

// Chatrooms lists the rooms user was a member of at the cut, as they stood
// then (members, admins, name, description, last message), most recently
// active first like the live list. The live list's unread counts are not
// computed for the past (UnreadCount stays 0; the API leaves it out).
func (r *Reader) Chatrooms(ctx context.Context, user int64, cut Cut) ([]readmodel.Chatroom, error) {
	ids, err := r.cfg.Rooms.PastRooms(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("history: rooms of user %d: %w", user, err)
	}
	// A pass at a time, so that what is held in memory (the rooms' last
	// events, their receipt streams) stays bounded however many rooms the
	// user has been in.
	var rooms []pastRoom
	for from := 0; from < len(ids); from += roomsPerPass {
		got, err := r.chatrooms(ctx, user, cut, ids[from:min(from+roomsPerPass, len(ids))])
		if err != nil {
			return nil, err
		}
		rooms = append(rooms, got...)
	}
	slices.SortFunc(rooms, func(a, b pastRoom) int {
		if c := b.activity.Compare(a.activity); c != 0 {
			return c
		}
		return cmp.Compare(b.room.ID, a.room.ID)
	})
	list := make([]readmodel.Chatroom, len(rooms))
	for i, f := range rooms {
		list[i] = f.room
	}
	return list, nil
}

// roomsPerPass is how many rooms Chatrooms reads at a time.
const roomsPerPass = 64

// pastRoom is a room as it stood at a cut, and when it was last active
// then (its last message, or its creation).
type pastRoom struct {
	room     readmodel.Chatroom
	activity time.Time
}

// chatrooms reads the rooms of ids that user was in at the cut.
func (r *Reader) chatrooms(ctx context.Context, user int64, cut Cut, ids []int64) ([]pastRoom, error) {
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = domain.ConversationStream(id)
	}
	locs, err := r.locateAll(ctx, streams, cut, true)
	if err != nil {
		return nil, err
	}
	var mine []int // indexes of the rooms user was in at the cut
	for i, stream := range streams {
		loc := locs[stream]
		if loc.rev < 0 || !loc.state.exists {
			continue
		}
		if _, member := loc.state.conv.MembershipOf(user); member {
			mine = append(mine, i)
		}
	}
	named, err := r.names(ctx, ids, streams, locs, mine)
	if err != nil {
		return nil, err
	}
	// Each room's last message, then all of them rendered together (their
	// receipts read in one pass).
	type walked struct {
		last []sent
		life map[int64][]change
	}
	walks := make([]walked, len(mine))
	err = parallel(len(mine), func(j int) error {
		i := mine[j]
		w := &walks[j]
		var err error
		w.life, err = r.walk(ctx, ids[i], locs[streams[i]], func(m sent) bool {
			w.last = append(w.last, m)
			return false
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	var sends []sent
	life := map[int64][]change{}
	for _, w := range walks {
		sends = append(sends, w.last...)
		maps.Copy(life, w.life)
	}
	msgs, err := r.render(ctx, cut, sends, life, nil)
	if err != nil {
		return nil, err
	}
	last := make(map[int64]*readmodel.Message, len(msgs))
	for k := range msgs {
		last[msgs[k].ConversationID] = &msgs[k]
	}

	rooms := make([]pastRoom, 0, len(mine))
	for _, i := range mine {
		st := locs[streams[i]].state
		n := named[i]
		c := readmodel.Chatroom{
			ID: ids[i], Members: st.conv.Members(), Admins: st.conv.Admins(), Type: string(st.conv.Type),
			CreatedBy: st.conv.CreatedBy, CreatedAt: st.createdAt, UpdatedAt: st.updatedAt,
			Name: n.name, Description: n.description, LastMessage: last[ids[i]],
		}
		activity := st.createdAt // when it was last active: its last message, or its creation
		if c.LastMessage != nil {
			activity = c.LastMessage.CreatedAt
		}
		rooms = append(rooms, pastRoom{c, activity})
	}
	return rooms, nil
}

// naming is a room's name and description at a cut.
type naming struct{ name, description *string }

// names reads the names and descriptions of the rooms at indexes picked
// of ids (streams, located at locs) from the events that set them, all in
// one read of the log.
func (r *Reader) names(ctx context.Context, ids []int64, streams []string, locs map[string]located, picked []int) (map[int]naming, error) {
	type ask struct {
		room int
		name bool
	}
	var asks []ask
	var reads []eventstore.StreamRead
	for _, i := range picked {
		s := locs[streams[i]].state
		for _, a := range []struct {
			rev  int64
			name bool
		}{{s.nameRev, true}, {s.descRev, false}} {
			if a.rev >= 0 {
				asks = append(asks, ask{i, a.name})
				reads = append(reads, eventstore.StreamRead{Stream: streams[i], Dir: eventstore.Forwards, From: uint64(a.rev), Count: 1})
			}
		}
	}
	out := make(map[int]naming, len(picked))
	if len(reads) == 0 {
		return out, nil
	}
	got, err := eventstore.ReadStreams(ctx, r.cfg.Log, reads)
	if err != nil {
		return nil, fmt.Errorf("history: read room names: %w", err)
	}
	for k, a := range asks {
		text, err := r.nameIn(got[k], reads[k], a.name)
		if err != nil {
			return nil, err
		}
		n := out[a.room]
		if a.name {
			n.name = text
		} else {
			n.description = text
		}
		out[a.room] = n
	}
	return out, nil
}

// nameIn takes the room's name (or description) from events, the answer to
// rd: a read of the event that set it.
func (r *Reader) nameIn(events []eventstore.RecordedEvent, rd eventstore.StreamRead, name bool) (*string, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("history: %s at %d: the event that named the room is missing", rd.Stream, rd.From)
	}
	e := events[0]
	ev, _, _, err := r.cfg.Registry.DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	switch x := ev.(type) {
	case domain.ConversationCreated:
		if name {
			return x.Name, nil
		}
		return x.Description, nil
	case domain.ConversationUpdated:
		if name {
			return x.Name, nil
		}
		return x.Description, nil
	}
	return nil, fmt.Errorf("history: %s at %d is a %s, not the event that named the room", rd.Stream, rd.From, e.Type)
}
