package commands

import (
	"context"
	"fmt"

	"github.com/evchat/evchat/domain"
)

// UpdateChatroom is a request to rename or redescribe a group; a nil field
// is left as it is.
type UpdateChatroom struct {
	ConversationID int64
	Name           *string
	Description    *string
}

// UpdateChatroom changes a group's name or description; admins only.
// Nothing changed appends nothing (a zero Written). Errors:
// ErrConversationNotFound, ErrNotMember, ErrNotAdmin,
// ErrDirectNotEditable, field errors as for a creation.
func (s *Service) UpdateChatroom(ctx context.Context, a Actor, cmd UpdateChatroom) (_ Written, err error) {
	defer s.observe("update_chatroom", s.now(), &err)
	w, _, err := s.updateConversation(ctx, a, cmd.ConversationID, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		return c.Update(a.UserID, cmd.Name, cmd.Description, s.limits)
	})
	return w, err
}

// AddMember makes user a member of a room, by an admin. Adding a member
// returns their existing membership (New false), as a join does. Errors:
// ErrConversationNotFound, ErrNotMember, ErrNotAdmin, a field error for an
// unknown user, ErrNotParty, ErrRoomFull.
func (s *Service) AddMember(ctx context.Context, a Actor, conversationID, user int64) (_ Joined, err error) {
	defer s.observe("add_member", s.now(), &err)
	out := Joined{ConversationID: conversationID, UserID: user}
	w, c, err := s.updateConversation(ctx, a, conversationID, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		existing, err := c.CheckAdd(a.UserID, user, s.limits)
		if err != nil || existing != 0 {
			out.MembershipID, out.New = existing, false
			return nil, err
		}
		if err := s.checkUser(ctx, user); err != nil {
			return nil, err
		}
		mid, err := s.ids.Next(ctx, MembershipIDs)
		if err != nil {
			return nil, err
		}
		out.MembershipID, out.New = mid, true
		return c.Add(a.UserID, user, mid), nil
	})
	if err == nil && !out.New {
		w.Position = c.joinedAt(user)
	}
	out.Written = w
	return out, err
}

// checkUser returns a field error unless user exists (as the read model
// knows it).
func (s *Service) checkUser(ctx context.Context, user int64) error {
	if user <= 0 {
		return domain.FieldError("user", fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", user))
	}
	missing, err := s.lookups.MissingUsers(ctx, []int64{user})
	if err != nil {
		return fmt.Errorf("look up user: %w", err)
	}
	if len(missing) > 0 {
		return domain.FieldError("user", fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", user))
	}
	return nil
}

// RemoveMember takes user out of a room, by an admin; when that was the
// last admin, the longest-standing member is promoted in the same append.
// Errors: ErrConversationNotFound, ErrNotMember, ErrNotAdmin,
// ErrNotMemberToLeave.
func (s *Service) RemoveMember(ctx context.Context, a Actor, conversationID, user int64) (_ Written, err error) {
	defer s.observe("remove_member", s.now(), &err)
	w, _, err := s.updateConversation(ctx, a, conversationID, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		return c.Remove(a.UserID, user)
	})
	return w, err
}

// PromoteAdmin makes a member an admin, by an admin; promoting an admin
// appends nothing. Errors: ErrConversationNotFound, ErrNotMember,
// ErrNotAdmin, ErrNotAMember.
func (s *Service) PromoteAdmin(ctx context.Context, a Actor, conversationID, user int64) (_ Written, err error) {
	defer s.observe("promote_admin", s.now(), &err)
	w, _, err := s.updateConversation(ctx, a, conversationID, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		return c.Promote(a.UserID, user)
	})
	return w, err
}
