package commands

import (
	"maps"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// convState is a conversation's state as the write side caches it: the
// domain's state, and where in the log each membership began, so that a
// join by a member answers with their membership's position (the caller's
// read-your-writes wait needs it, also when a racing first join has not
// been projected yet). Recording positions while the events are applied
// keeps a load's cost what it was.
type convState struct {
	conv *domain.Conversation
	// joined maps each member to the position of the event that made them
	// one (for events appended together: the position of the last).
	joined map[int64]eventstore.Position
	// floor is at or after the events of the memberships joined does not
	// list: those of the snapshot the state was restored from (floor is
	// the position of the snapshot's event).
	floor eventstore.Position
}

func newConvState(c *domain.Conversation) *convState {
	return &convState{conv: c, joined: map[int64]eventstore.Position{}}
}

func (s *convState) clone() *convState {
	return &convState{conv: s.conv.Clone(), joined: maps.Clone(s.joined), floor: s.floor}
}

// forSends is a copy of s to apply messages to and nothing else: it
// shares s's maps (joined, and the conversation's), which applying a
// MessageSent leaves alone. The states of the cache never change (every
// command works on a copy), so sharing their maps is safe; cloning them
// for every batch of sends was about a twentieth of what a send allocated.
func (s *convState) forSends() *convState {
	return &convState{conv: s.conv.ShallowCopy(), joined: s.joined, floor: s.floor}
}

// apply evolves the state by an event recorded at pos.
func (s *convState) apply(e domain.Event, pos eventstore.Position) {
	s.conv.Apply(e)
	switch e := e.(type) {
	case domain.ConversationCreated:
		for _, m := range e.Members {
			s.joined[m.UserID] = pos
		}
	case domain.MemberJoined:
		s.joined[e.UserID] = pos
	case domain.MemberLeft:
		delete(s.joined, e.UserID)
	}
}

// joinedAt returns the position of the event that made user a member, or,
// for a membership older than the snapshot the state was restored from, the
// snapshot event's position, which is past it.
func (s *convState) joinedAt(user int64) eventstore.Position {
	if p, ok := s.joined[user]; ok {
		return p
	}
	return s.floor
}
