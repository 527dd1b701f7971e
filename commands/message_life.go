package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// ProjectedMessages answers what the read model holds of one message.
type ProjectedMessages interface {
	// ProjectedMessage returns the message's state as the read model holds
	// it (found false: it holds no such message) and the log position
	// through which the read model holds the log, both read at one moment.
	ProjectedMessage(ctx context.Context, id int64) (m domain.MessageState, found bool, through eventstore.Position, err error)
}

// maxMessageTail bounds the events a message's state is brought up to date
// with: a read model that far behind answers "unavailable, retry".
const maxMessageTail = 10_000

// Where the state of a message lives, for the rules of editing, deleting
// and reacting (sender, deleted, reactions):
//
// The conversation aggregate holds no per-message state: a room of 100,000
// messages would keep 100,000 entries in every cached state and snapshot,
// and a load skips decoding all messages but the last. Reading the
// message's events from the room stream would read the whole stream after
// an old message. A write-side table beside the log cannot be updated in
// one transaction with an EventStoreDB append.
//
// Instead a message's state is the read model's row as of the read model's
// checkpoint (read in one statement, so row and checkpoint agree), brought
// up to the room stream's head by the stream's events after that
// checkpoint, read backwards from the end: normally none or a few. The
// command decides on that state and appends at the room's exact loaded
// revision, like a send: if anything was appended to the room after the
// state was read, the append conflicts and the command decides again. So
// two concurrent edits, deletes or reactions are serialised by the room
// stream's expected revision, on both event stores and across processes.
// Every message event of a room lives in the room's stream, so nothing
// else can change a message's state.
//
// messageState returns the state, and the position it is exact through
// (the newest event read, or the checkpoint): the read model shows the
// state once it has reached that position.
func (s *Service) messageState(ctx context.Context, conv, id int64) (*domain.MessageState, eventstore.Position, error) {
	if s.messages == nil {
		return nil, eventstore.Position{}, fmt.Errorf("message %d: no projected messages configured", id)
	}
	projected, found, through, err := s.messages.ProjectedMessage(ctx, id)
	if err != nil {
		return nil, through, fmt.Errorf("message %d: %w", id, err)
	}
	m := &projected
	if !found || m.ConversationID != conv {
		m = &domain.MessageState{ID: id}
	}
	m.ID = id
	m = m.Clone()
	stream := domain.ConversationStream(conv)
	var tail []eventstore.RecordedEvent
	seen := through
	from := eventstore.End
read:
	for {
		events, err := s.store.ReadStream(ctx, stream, eventstore.Backwards, from, 256)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return nil, through, fmt.Errorf("message %d: read %s: %w", id, stream, err)
		}
		for _, re := range events {
			if !through.Less(re.Position) {
				break read
			}
			if seen.Less(re.Position) {
				seen = re.Position
			}
			tail = append(tail, re)
			if len(tail) > maxMessageTail {
				return nil, through, domain.ErrUnavailable
			}
		}
		if len(events) < 256 || events[len(events)-1].Revision == 0 {
			break
		}
		from = events[len(events)-1].Revision - 1
	}
	for i := len(tail) - 1; i >= 0; i-- {
		switch tail[i].Type {
		case domain.TypeMessageSent, domain.TypeMessageDeleted, domain.TypeReactionAdded, domain.TypeReactionRemoved:
			ev, err := s.decode(tail[i])
			if err != nil {
				return nil, through, fmt.Errorf("message %d: %w", id, err)
			}
			m.Apply(ev)
		}
	}
	return m, seen, nil
}

// messageRoom returns the room of a message, from the read model: a
// message's room never changes, and its id reaches clients only through
// answers and frames that wait for the read model to show it.
// ErrMessageNotFound when there is none.
func (s *Service) messageRoom(ctx context.Context, id int64) (int64, error) {
	if s.messages == nil {
		return 0, fmt.Errorf("message %d: no projected messages configured", id)
	}
	m, found, _, err := s.messages.ProjectedMessage(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("message %d: %w", id, err)
	}
	if !found {
		return 0, domain.ErrMessageNotFound
	}
	return m.ConversationID, nil
}

// Changed is the outcome of a change to a message: where its event landed,
// or, when nothing needed appending (a repeated delete or reaction), the
// position through which the state it was decided on holds.
type Changed struct {
	Written
	ConversationID int64
	MessageID      int64
	// Appended is false when nothing changed.
	Appended bool
}

// changeMessage runs decide on the message's state inside the room's
// critical section and appends what it decides at the room's revision.
func (s *Service) changeMessage(ctx context.Context, a Actor, id int64,
	decide func(c *domain.Conversation, m *domain.MessageState) ([]domain.Event, error),
) (Changed, error) {
	conv, err := s.messageRoom(ctx, id)
	if err != nil {
		return Changed{}, err
	}
	var seen eventstore.Position
	w, _, err := s.updateConversation(ctx, a, conv, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		if err := c.CheckMember(a.UserID); err != nil {
			return nil, err
		}
		m, through, err := s.messageState(ctx, conv, id)
		if err != nil {
			return nil, err
		}
		seen = through
		return decide(c, m)
	})
	if err != nil {
		return Changed{}, err
	}
	out := Changed{Written: w, ConversationID: conv, MessageID: id, Appended: !w.Position.IsZero()}
	if !out.Appended {
		out.Position = seen
	}
	return out, nil
}

// EditMessage replaces the text of a message. Errors: ErrMessageNotFound,
// ErrConversationNotFound, ErrNotMember, ErrNotSender, ErrMessageDeleted,
// field errors of text, ErrConflict.
func (s *Service) EditMessage(ctx context.Context, a Actor, id int64, text string) (_ Changed, err error) {
	defer s.observe("edit_message", s.now(), &err)
	return s.changeMessage(ctx, a, id, func(c *domain.Conversation, m *domain.MessageState) ([]domain.Event, error) {
		return c.Edit(m, a.UserID, text, s.limits)
	})
}

// DeleteMessage leaves a tombstone of a message; deleting it again changes
// nothing and succeeds. Errors: ErrMessageNotFound, ErrConversationNotFound,
// ErrNotMember, ErrNotSenderOrAdmin, ErrConflict.
func (s *Service) DeleteMessage(ctx context.Context, a Actor, id int64) (_ Changed, err error) {
	defer s.observe("delete_message", s.now(), &err)
	return s.changeMessage(ctx, a, id, func(c *domain.Conversation, m *domain.MessageState) ([]domain.Event, error) {
		return c.Delete(m, a.UserID)
	})
}

// React puts the actor's emoji on a message (add) or takes it off; both are
// idempotent. Errors: ErrMessageNotFound, ErrConversationNotFound,
// ErrNotMember, ErrBadEmoji, ErrMessageDeleted, ErrTooManyReactions,
// ErrConflict.
func (s *Service) React(ctx context.Context, a Actor, id int64, emoji string, add bool) (_ Changed, err error) {
	defer s.observe("react", s.now(), &err)
	return s.changeMessage(ctx, a, id, func(c *domain.Conversation, m *domain.MessageState) ([]domain.Event, error) {
		return c.React(m, a.UserID, emoji, add)
	})
}

// checkReplyTo refuses a send whose reply_to is not a message of its room
// (a deleted one is fine: the reply keeps its context as a tombstone). The
// room's own rules (it exists, the sender is a member) come first.
func (s *Service) checkReplyTo(ctx context.Context, a Actor, cmd SendMessage) error {
	st, _, err := s.loadConversation(ctx, cmd.ConversationID)
	if err != nil {
		return err
	}
	if err := st.conv.CheckSend(a.UserID, cmd.Content, s.limits); err != nil {
		return err
	}
	if cmd.Content.ReplyTo < 0 || cmd.Content.ReplyTo > st.conv.LastMessageID {
		return domain.ErrReplyTo
	}
	m, _, err := s.messageState(ctx, cmd.ConversationID, cmd.Content.ReplyTo)
	if err != nil {
		return err
	}
	if !m.Exists() || m.ConversationID != cmd.ConversationID {
		return domain.ErrReplyTo
	}
	return nil
}
