package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// sendKeyEventID is the id of the message event a user's send with an
// idempotency key appends.
func sendKeyEventID(user int64, key string) uuid.UUID {
	return uuid.NewSHA1(sendKeyNamespace, fmt.Appendf(nil, "%d:%s", user, key))
}

// SendMessage posts a message into a conversation. The message id is taken
// inside the stream's critical section, after loading, and the append
// expects the exact revision loaded, so ids rise in the room's log order even
// across processes (a conflict retries with a new id). Errors:
// ErrConversationNotFound, ErrNotMember, ErrEmptyMessage, field errors,
// ErrKeyReused, ErrConflict.
func (s *Service) SendMessage(ctx context.Context, a Actor, cmd SendMessage) (_ Sent, err error) {
	defer s.observe("send_message", s.now(), &err)
	if cmd.Content.ReplyTo != 0 {
		if err := s.checkReplyTo(ctx, a, cmd); err != nil {
			return Sent{}, err
		}
	}
	if cmd.IdempotencyKey == "" {
		return s.sendCombined(ctx, a, cmd)
	}
	// Requests with one key queue here until the first is done, so the
	// others replay it. Across processes the key's record decides: it is
	// claimed before the append and completed after. The event id, derived
	// from the key, is not enough alone: EventStoreDB dedupes a repeated
	// event id only at the same expected revision.
	unlock := s.keyLocks.lock(fmt.Sprintf("%d:%s", a.UserID, cmd.IdempotencyKey))
	defer unlock()
	eventID := sendKeyEventID(a.UserID, cmd.IdempotencyKey)
	owner := uuid.New()
	var key *keyedEvent
	for attempt := 0; key == nil; attempt++ {
		if attempt == 3 {
			return Sent{}, ErrConflict // the key's claim keeps changing hands
		}
		// Read before the claim: no request appends the event before the
		// key is claimed, so the stream holds it at no revision up to this
		// head.
		head, err := s.streamHead(ctx, domain.ConversationStream(cmd.ConversationID))
		if err != nil {
			return Sent{}, fmt.Errorf("send message: %w", err)
		}
		prev, claimed, err := s.keys.Claim(ctx, a.UserID, cmd.IdempotencyKey, cmd.ConversationID, owner)
		if err != nil {
			return Sent{}, fmt.Errorf("send message: %w", err)
		}
		if claimed {
			key = &keyedEvent{id: eventID, through: head}
			break
		}
		if prev.ConversationID != cmd.ConversationID {
			return Sent{}, ErrKeyReused
		}
		if prev.MessageID != 0 {
			return replayed(prev), nil
		}
		// Claimed, never completed: another request with this key is
		// appending now, or died before or after its append. The log says
		// which.
		m, re, found, searched, err := s.findMessage(ctx, cmd.ConversationID, eventID)
		if err != nil {
			return Sent{}, err
		}
		if found {
			return s.completeKey(ctx, a.UserID, cmd.IdempotencyKey, KeyedSend{ConversationID: m.ConversationID, MessageID: m.MessageID, Position: re.Position})
		}
		// Not in the log through revision searched: take the claim over
		// and append. The former owner, if still appending, lands past
		// searched, where the append looks before and, on a conflict,
		// after its own attempt; and it can no longer release the key.
		took, err := s.keys.TakeOver(ctx, a.UserID, cmd.IdempotencyKey, prev.Owner, owner)
		if err != nil {
			return Sent{}, fmt.Errorf("send message: %w", err)
		}
		if took {
			key = &keyedEvent{id: eventID, through: searched}
		}
		// Otherwise the claim changed meanwhile (completed, released or
		// taken over): look again.
	}

	var msg domain.MessageSent
	w, _, err := s.updateConversation(ctx, a, cmd.ConversationID, key, func(c *domain.Conversation) ([]domain.Event, error) {
		if err := c.CheckSend(a.UserID, cmd.Content, s.limits); err != nil {
			return nil, err
		}
		ids, err := s.messageIDs.take(ctx, 1, c.LastMessageID)
		if err != nil {
			return nil, err
		}
		events := c.Send(a.UserID, ids[0], cmd.Content)
		msg = events[0].(domain.MessageSent)
		return events, nil
	})
	if errors.Is(err, eventstore.ErrDuplicateEventID) {
		return Sent{}, ErrKeyReused
	}
	var refused *domain.Error
	if errors.As(err, &refused) {
		// Refused by the rules (or busy past its retries): nothing was
		// appended, so the key is free for a corrected retry.
		if rerr := s.keys.Release(context.WithoutCancel(ctx), a.UserID, cmd.IdempotencyKey, owner); rerr != nil {
			s.log.Warn("send message: release idempotency key", "err", rerr)
		}
		return Sent{}, err
	}
	if err != nil {
		return Sent{}, err
	}
	// The append may have found the event in the stream already (a
	// concurrent request with this key): find out which message the log
	// really holds.
	stored, re, found, _, err := s.findMessage(ctx, cmd.ConversationID, eventID)
	if err != nil {
		return Sent{}, err
	}
	if !found {
		return Sent{}, fmt.Errorf("send message: event %s not found in %s after its append", eventID, domain.ConversationStream(cmd.ConversationID))
	}
	keyed := KeyedSend{ConversationID: cmd.ConversationID, MessageID: stored.MessageID, Position: re.Position}
	if stored.MessageID != msg.MessageID {
		return s.completeKey(ctx, a.UserID, cmd.IdempotencyKey, keyed)
	}
	if err := s.keys.Complete(ctx, a.UserID, cmd.IdempotencyKey, keyed); err != nil {
		return Sent{}, fmt.Errorf("send message: remember idempotency key: %w", err)
	}
	return Sent{Written: w, Message: msg}, nil
}

// completeKey records what a key made and returns it as a replay.
func (s *Service) completeKey(ctx context.Context, user int64, key string, k KeyedSend) (Sent, error) {
	if err := s.keys.Complete(ctx, user, key, k); err != nil {
		return Sent{}, fmt.Errorf("send message: remember idempotency key: %w", err)
	}
	return replayed(k), nil
}

// KeyedMessage returns, from the log, the message that the actor's send
// with an idempotency key made in a conversation, and when: for answering a
// replay while the read model has not caught up with it.
func (s *Service) KeyedMessage(ctx context.Context, a Actor, conv int64, key string) (domain.MessageSent, time.Time, error) {
	id := sendKeyEventID(a.UserID, key)
	m, re, found, _, err := s.findMessage(ctx, conv, id)
	if err != nil {
		return domain.MessageSent{}, time.Time{}, err
	}
	if !found {
		return domain.MessageSent{}, time.Time{}, fmt.Errorf("send message: event %s not found in %s", id, domain.ConversationStream(conv))
	}
	var md domain.Metadata
	if err := json.Unmarshal(re.Metadata, &md); err != nil {
		return domain.MessageSent{}, time.Time{}, fmt.Errorf("event %s metadata: %w", re.ID, err)
	}
	return m, md.Time, nil
}

func replayed(k KeyedSend) Sent {
	return Sent{
		Written:  Written{Position: k.Position},
		Message:  domain.MessageSent{ConversationID: k.ConversationID, MessageID: k.MessageID},
		Replayed: true,
	}
}

// findMessage looks for the message event with the given event id in the
// conversation, newest first: it returns the message and its event, or,
// when it is not there, the revision through which the search read (-1:
// the stream does not exist).
func (s *Service) findMessage(ctx context.Context, conv int64, id uuid.UUID) (m domain.MessageSent, at eventstore.RecordedEvent, found bool, searched int64, err error) {
	stream := domain.ConversationStream(conv)
	match := func(events []eventstore.RecordedEvent) (bool, error) {
		for _, re := range events {
			if re.ID != id {
				continue
			}
			ev, err := s.decode(re)
			if err != nil {
				return false, err
			}
			if msg, ok := ev.(domain.MessageSent); ok {
				m, at = msg, re
				return true, nil
			}
		}
		return false, nil
	}
	// Almost always the event is among the newest.
	events, err := s.store.ReadStream(ctx, stream, eventstore.Backwards, eventstore.End, 64)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return m, at, false, -1, nil
	}
	if err != nil {
		return m, at, false, 0, fmt.Errorf("send message: read back: %w", err)
	}
	if len(events) == 0 {
		return m, at, false, -1, nil
	}
	searched = int64(events[0].Revision)
	if found, err = match(events); found || err != nil || len(events) < 64 {
		return m, at, found, searched, err
	}
	// Further back: scan the stream up to what the first read saw.
	for from := uint64(0); from <= uint64(searched); {
		batch, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, from, 1000)
		if err != nil {
			return m, at, false, 0, fmt.Errorf("send message: read back: %w", err)
		}
		if found, err = match(batch); found || err != nil || len(batch) < 1000 {
			return m, at, found, searched, err
		}
		from = batch[len(batch)-1].Revision + 1
	}
	return m, at, false, searched, nil
}

// streamHead returns the stream's last revision, -1 when it does not exist.
func (s *Service) streamHead(ctx context.Context, stream string) (int64, error) {
	events, err := s.store.ReadStream(ctx, stream, eventstore.Backwards, eventstore.End, 1)
	if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && len(events) == 0) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	return int64(events[0].Revision), nil
}
