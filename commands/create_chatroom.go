package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// CreateChatroom is a request to open a conversation.
type CreateChatroom struct {
	Type        domain.ConversationType // required: domain.Direct or domain.Group
	Name        *string
	Description *string
	Members     []int64
	// InviteOnly groups are joined with an invite (CreateInvite).
	InviteOnly bool
}

// Created is the new conversation.
type Created struct {
	Written
	Conversation *domain.Conversation
	// Existing is true when a direct chat between the two existed already:
	// Conversation is that one, nothing new was created.
	Existing bool
}

// CreateChatroom opens a conversation with the actor as its first member.
// Unknown member ids and too many members are field errors.
func (s *Service) CreateChatroom(ctx context.Context, a Actor, cmd CreateChatroom) (_ Created, err error) {
	defer s.observe("create_chatroom", s.now(), &err)
	n := domain.NewConversation{Type: cmd.Type, Name: cmd.Name, Description: cmd.Description, Creator: a.UserID, Members: cmd.Members, InviteOnly: cmd.InviteOnly}
	members, err := n.Check(s.limits)
	if err != nil {
		return Created{}, err
	}
	if len(members) > 1 {
		missing, err := s.lookups.MissingUsers(ctx, members[1:])
		if err != nil {
			return Created{}, fmt.Errorf("create chatroom: %w", err)
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			ids := make([]string, len(missing))
			for i, m := range missing {
				ids[i] = fmt.Sprint(m)
			}
			return Created{}, domain.FieldError("members", fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", strings.Join(ids, ", ")))
		}
	}
	if n.Type == domain.Direct && len(members) == 2 {
		return s.createDirect(ctx, a, n, members)
	}
	id, err := s.ids.Next(ctx, ConversationIDs)
	if err != nil {
		return Created{}, fmt.Errorf("create chatroom: %w", err)
	}
	return s.createConversation(ctx, a, id, n, members)
}

// createConversation appends the creation of conversation id, with "no
// stream" expected.
func (s *Service) createConversation(ctx context.Context, a Actor, id int64, n domain.NewConversation, members []int64) (Created, error) {
	mids, err := s.ids.NextN(ctx, MembershipIDs, len(members))
	if err != nil {
		return Created{}, fmt.Errorf("create chatroom: %w", err)
	}
	events := domain.Create(id, n, members, mids)
	data, at, err := s.encode(a, nil, events...)
	if err != nil {
		return Created{}, err
	}
	stream := domain.ConversationStream(id)
	res, err := s.store.Append(ctx, stream, eventstore.NoStream(), data...)
	if err != nil {
		return Created{}, fmt.Errorf("create chatroom: %w", err)
	}
	c := newConvState(&domain.Conversation{})
	for _, e := range events {
		c.apply(e, res.Position)
	}
	s.convs.put(stream, c.clone(), int64(res.Revision))
	return Created{Written: Written{Position: res.Position, At: at}, Conversation: c.conv}, nil
}
