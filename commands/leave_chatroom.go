package commands

import (
	"context"

	"github.com/evchat/evchat/domain"
)

// LeaveChatroom removes the actor from a conversation. Errors:
// ErrConversationNotFound, ErrNotMemberToLeave.
func (s *Service) LeaveChatroom(ctx context.Context, a Actor, conversationID int64) (_ Written, err error) {
	defer s.observe("leave_chatroom", s.now(), &err)
	w, _, err := s.updateConversation(ctx, a, conversationID, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		return c.Leave(a.UserID)
	})
	return w, err
}

// Conversation returns the current state of a conversation (for membership
// checks on the read side), from the cache when it is current.
func (s *Service) Conversation(ctx context.Context, id int64) (*domain.Conversation, error) {
	c, _, err := s.loadConversation(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.conv, nil
}
