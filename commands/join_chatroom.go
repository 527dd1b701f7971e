package commands

import (
	"context"

	"github.com/evchat/evchat/domain"
)

// Joined is the actor's membership.
type Joined struct {
	Written
	MembershipID   int64
	ConversationID int64
	UserID         int64
	// New is false when the actor was a member already: nothing was
	// appended, and Position is that of the membership's event.
	New bool
}

// JoinChatroom makes the actor a member. Joining a room one is in already
// returns the existing membership, with the position of the event that
// made it (a racing first join may not be projected yet: the caller waits
// for it as for a new one). invite is the token of an invite, needed to
// join an invite-only group (and ignored otherwise). Errors:
// ErrConversationNotFound, ErrNotParty, ErrInviteRequired, ErrRoomFull.
func (s *Service) JoinChatroom(ctx context.Context, a Actor, conversationID int64, invite string) (_ Joined, err error) {
	defer s.observe("join_chatroom", s.now(), &err)
	out := Joined{ConversationID: conversationID, UserID: a.UserID}
	w, c, err := s.updateConversation(ctx, a, conversationID, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		existing, err := c.CheckJoin(a.UserID, s.limits)
		if err != nil || existing != 0 {
			out.MembershipID, out.New = existing, false
			return nil, err
		}
		if err := c.CheckInvite(inviteHash(invite), s.now()); err != nil {
			return nil, err
		}
		mid, err := s.ids.Next(ctx, MembershipIDs)
		if err != nil {
			return nil, err
		}
		out.MembershipID, out.New = mid, true
		return c.Join(a.UserID, mid), nil
	})
	if err == nil && !out.New {
		w.Position = c.joinedAt(a.UserID)
	}
	out.Written = w
	return out, err
}
