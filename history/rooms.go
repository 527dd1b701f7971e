package history

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = domain.ConversationStream(id)
	}
	locs, err := r.locateAll(ctx, streams, cut, true)
	if err != nil {
		return nil, err
	}
	type found struct {
		room     readmodel.Chatroom
		activity time.Time
		ok       bool
	}
	out := make([]found, len(ids))
	err = parallel(len(ids), func(i int) error {
		loc := locs[streams[i]]
		if loc.rev < 0 || !loc.state.exists {
			return nil
		}
		if _, member := loc.state.conv.MembershipOf(user); !member {
			return nil
		}
		room, activity, err := r.chatroom(ctx, ids[i], cut, loc)
		out[i] = found{room, activity, err == nil}
		return err
	})
	if err != nil {
		return nil, err
	}
	var rooms []found
	for _, f := range out {
		if f.ok {
			rooms = append(rooms, f)
		}
	}
	slices.SortFunc(rooms, func(a, b found) int {
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

// chatroom renders a room at the cut located at loc, and when it was last
// active (its last message, or its creation).
func (r *Reader) chatroom(ctx context.Context, id int64, cut Cut, loc located) (readmodel.Chatroom, time.Time, error) {
	s := loc.state
	c := readmodel.Chatroom{
		ID: id, Members: s.conv.Members(), Admins: s.conv.Admins(), Type: string(s.conv.Type),
		CreatedBy: s.conv.CreatedBy, CreatedAt: s.createdAt, UpdatedAt: s.updatedAt,
	}
	var err error
	if c.Name, err = r.nameAt(ctx, id, s.nameRev, true); err != nil {
		return c, time.Time{}, err
	}
	if c.Description, err = r.nameAt(ctx, id, s.descRev, false); err != nil {
		return c, time.Time{}, err
	}
	var last []sent
	life, err := r.walk(ctx, id, loc, func(m sent) bool {
		last = append(last, m)
		return false
	})
	if err != nil {
		return c, time.Time{}, err
	}
	activity := s.createdAt
	if len(last) > 0 {
		msgs, err := r.render(ctx, id, cut, last, life, nil)
		if err != nil {
			return c, time.Time{}, err
		}
		c.LastMessage = &msgs[0]
		activity = msgs[0].CreatedAt
	}
	return c, activity, nil
}

// nameAt reads the room's name (or description) from the event at rev that
// set it; nil when none did.
func (r *Reader) nameAt(ctx context.Context, room, rev int64, name bool) (*string, error) {
	if rev < 0 {
		return nil, nil
	}
	stream := domain.ConversationStream(room)
	events, err := r.cfg.Log.ReadStream(ctx, stream, eventstore.Forwards, uint64(rev), 1)
	if err != nil {
		return nil, fmt.Errorf("history: read %s at %d: %w", stream, rev, err)
	}
	if len(events) == 0 {
		return nil, errors.New("history: " + stream + ": the event that named the room is missing")
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
	return nil, fmt.Errorf("history: %s at %d is a %s, not the event that named the room", stream, rev, e.Type)
}
