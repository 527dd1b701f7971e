package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// createDirect opens the direct chat of the two members, or returns the one
// they have. The pair is claimed first, in its stream direct-<a>-<b> with
// "no stream" expected, naming the conversation id; then the conversation
// is created, with "no stream" expected too. Of concurrent creations one
// claims the pair and every other one answers with its conversation, on
// any event store. A claim whose conversation does not exist yet (its
// creator is still at it, or died in between) is completed by whoever finds
// it: both append the creation with "no stream" expected, exactly one
// lands, and the other answers with it.
func (s *Service) createDirect(ctx context.Context, a Actor, n domain.NewConversation, members []int64) (Created, error) {
	stream := domain.DirectStream(members[0], members[1])
	id, found, err := s.directClaim(ctx, stream)
	if err != nil {
		return Created{}, err
	}
	if !found {
		if id, err = s.ids.Next(ctx, ConversationIDs); err != nil {
			return Created{}, fmt.Errorf("create chatroom: %w", err)
		}
		claim, _, err := s.encode(a, nil, domain.DirectChatClaimed{
			UserA: min(members[0], members[1]), UserB: max(members[0], members[1]), ConversationID: id,
		})
		if err != nil {
			return Created{}, err
		}
		_, err = s.store.Append(ctx, stream, eventstore.NoStream(), claim...)
		switch {
		case conflict(err):
			// Another creation claimed the pair first: its conversation.
			if id, found, err = s.directClaim(ctx, stream); err != nil {
				return Created{}, err
			} else if !found {
				return Created{}, fmt.Errorf("create chatroom: %s exists but holds no claim", stream)
			}
		case err != nil:
			return Created{}, fmt.Errorf("create chatroom: claim %s: %w", stream, err)
		}
	}
	c, err := s.existingDirect(ctx, id)
	if err != nil || c.Conversation != nil {
		return c, err
	}
	created, err := s.createConversation(ctx, a, id, n, members)
	var wev *eventstore.WrongExpectedVersionError
	if errors.As(err, &wev) {
		// Created meanwhile by the claim's other creator.
		c, err := s.existingDirect(ctx, id)
		if err == nil && c.Conversation == nil {
			err = fmt.Errorf("create chatroom: conversation %d conflicts but does not exist", id)
		}
		return c, err
	}
	return created, err
}

// directClaim returns the conversation id a pair's claim stream names.
func (s *Service) directClaim(ctx context.Context, stream string) (int64, bool, error) {
	events, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, 0, 1)
	if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && len(events) == 0) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("create chatroom: read %s: %w", stream, err)
	}
	ev, err := s.decode(events[0])
	if err != nil {
		return 0, false, fmt.Errorf("create chatroom: read %s: %w", stream, err)
	}
	claim, ok := ev.(domain.DirectChatClaimed)
	if !ok {
		return 0, false, fmt.Errorf("create chatroom: %s starts with %s", stream, events[0].Type)
	}
	return claim.ConversationID, true, nil
}

// existingDirect returns conversation id as Existing, with the position of
// its last event (for the caller's read-your-writes wait), or a zero
// Created when it does not exist.
func (s *Service) existingDirect(ctx context.Context, id int64) (Created, error) {
	stream := domain.ConversationStream(id)
	c, rev, err := s.loadConversation(ctx, id)
	if err != nil {
		return Created{}, fmt.Errorf("create chatroom: %w", err)
	}
	if rev < 0 || !c.conv.Exists() {
		return Created{}, nil
	}
	last, err := s.store.ReadStream(ctx, stream, eventstore.Backwards, eventstore.End, 1)
	if err != nil || len(last) == 0 {
		return Created{}, fmt.Errorf("create chatroom: read %s: %w", stream, err)
	}
	return Created{Written: Written{Position: last[0].Position, At: last[0].Created}, Conversation: c.conv, Existing: true}, nil
}
