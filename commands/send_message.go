package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// SendMessage is a request to post a message.
type SendMessage struct {
	ConversationID int64
	Content        domain.MessageContent
	// IdempotencyKey, when set, makes a retry return the first message.
	IdempotencyKey string
}

// Sent is the posted message. When Replayed is true the request repeated an
// idempotency key: nothing was appended, and only Message.MessageID,
// Message.ConversationID and Position are known (the caller reads the rest
// from the read model once it has caught up with Position).
type Sent struct {
	Written
	Message  domain.MessageSent
	Replayed bool
}

// ErrKeyReused is returned when an idempotency key is sent again for another conversation.
var ErrKeyReused = domain.Errorf(domain.KindConflict, "This Idempotency-Key was already used for another request.")

// sendKeyNamespace derives event ids from idempotency keys.
var sendKeyNamespace = uuid.MustParse("5b0f3c9e-6f0e-4c64-9a53-0d4f3c1e8a77")

// SendMessage posts a message into a conversation. The message id is taken
// inside the stream's critical section, after loading, and the append
// expects the exact revision loaded, so ids rise in the room's log order even
// across processes (a conflict retries with a new id). Errors:
// ErrConversationNotFound, ErrNotMember, ErrEmptyMessage, field errors,
// ErrKeyReused, ErrConflict.
func (s *Service) SendMessage(ctx context.Context, a Actor, cmd SendMessage) (Sent, error) {
	if cmd.IdempotencyKey == "" {
		return s.sendCombined(ctx, a, cmd)
	}
	var eventIDs []uuid.UUID
	if cmd.IdempotencyKey != "" {
		// Requests with one key queue here until the first has saved it, so
		// the others replay it. The event id alone is not enough: EventStoreDB
		// dedupes a repeated event id only at the same expected revision, and
		// a duplicate that loaded the stream after the first append would be
		// appended again.
		unlock := s.keyLocks.lock(fmt.Sprintf("%d:%s", a.UserID, cmd.IdempotencyKey))
		defer unlock()
		prev, found, err := s.keys.Lookup(ctx, a.UserID, cmd.IdempotencyKey)
		if err != nil {
			return Sent{}, fmt.Errorf("send message: %w", err)
		}
		if found {
			if prev.ConversationID != cmd.ConversationID {
				return Sent{}, ErrKeyReused
			}
			return replayed(prev), nil
		}
		eventIDs = []uuid.UUID{uuid.NewSHA1(sendKeyNamespace, fmt.Appendf(nil, "%d:%s", a.UserID, cmd.IdempotencyKey))}
	}

	var msg domain.MessageSent
	w, _, err := s.updateConversation(ctx, a, cmd.ConversationID, eventIDs, func(c *domain.Conversation) ([]domain.Event, error) {
		if err := c.CheckSend(a.UserID, cmd.Content, s.limits); err != nil {
			return nil, err
		}
		ids, err := s.messageIDs.take(ctx, 1, c.LastMessageID)
		if err != nil {
			return nil, err
		}
		id := ids[0]
		events := c.Send(a.UserID, id, cmd.Content)
		msg = events[0].(domain.MessageSent)
		return events, nil
	})
	if errors.Is(err, eventstore.ErrDuplicateEventID) {
		return Sent{}, ErrKeyReused
	}
	if err != nil {
		return Sent{}, err
	}
	if cmd.IdempotencyKey == "" {
		return Sent{Written: w, Message: msg}, nil
	}

	// The store returns the original result when the same event id is in the
	// stream already (a concurrent retry that passed the lookup): find out
	// which message the log really holds.
	stored, err := s.messageAt(ctx, cmd.ConversationID, eventIDs[0])
	if err != nil {
		return Sent{}, err
	}
	keyed := KeyedSend{ConversationID: cmd.ConversationID, MessageID: stored.MessageID, Position: w.Position}
	if err := s.keys.Save(ctx, a.UserID, cmd.IdempotencyKey, keyed); err != nil {
		return Sent{}, fmt.Errorf("send message: remember idempotency key: %w", err)
	}
	if stored.MessageID != msg.MessageID {
		return replayed(keyed), nil
	}
	return Sent{Written: w, Message: msg}, nil
}

func replayed(k KeyedSend) Sent {
	return Sent{
		Written:  Written{Position: k.Position},
		Message:  domain.MessageSent{ConversationID: k.ConversationID, MessageID: k.MessageID},
		Replayed: true,
	}
}

// messageAt reads back the message event with the given event id near the end of the stream.
func (s *Service) messageAt(ctx context.Context, conv int64, id uuid.UUID) (domain.MessageSent, error) {
	stream := domain.ConversationStream(conv)
	events, err := s.store.ReadStream(ctx, stream, eventstore.Backwards, eventstore.End, 64)
	if err != nil {
		return domain.MessageSent{}, fmt.Errorf("send message: read back: %w", err)
	}
	for _, re := range events {
		if re.ID != id {
			continue
		}
		ev, err := s.decode(re)
		if err != nil {
			return domain.MessageSent{}, err
		}
		if m, ok := ev.(domain.MessageSent); ok {
			return m, nil
		}
	}
	// Older than the tail we read: the log holds it further back. Scan forwards.
	for from := uint64(0); ; {
		batch, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, from, 1000)
		if err != nil {
			return domain.MessageSent{}, fmt.Errorf("send message: read back: %w", err)
		}
		for _, re := range batch {
			if re.ID == id {
				ev, err := s.decode(re)
				if err != nil {
					return domain.MessageSent{}, err
				}
				if m, ok := ev.(domain.MessageSent); ok {
					return m, nil
				}
			}
		}
		if len(batch) < 1000 {
			return domain.MessageSent{}, fmt.Errorf("send message: event %s not found in %s", id, stream)
		}
		from = batch[len(batch)-1].Revision + 1
	}
}
