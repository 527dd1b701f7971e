package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// MarkRead is a request to mark messages of a conversation read.
type MarkRead struct {
	ConversationID int64
	MessageIDs     []int64
}

// Read is the outcome: the ids newly marked read (empty when all were
// already read, or are the reader's own: nothing is appended then).
type Read struct {
	Written
	MessageIDs []int64
}

// MarkRead records that the actor read messages. It is idempotent, and
// marking one's own messages is a no-op. Receipts go to a stream of their own
// per conversation and reader, out of the way of message sends. Errors:
// ErrConversationNotFound, ErrNotMember, a field error for ids that are not
// messages of the conversation.
func (s *Service) MarkRead(ctx context.Context, a Actor, cmd MarkRead) (_ Read, err error) {
	defer s.observe("mark_read", s.now(), &err)
	if len(cmd.MessageIDs) == 0 {
		return Read{}, domain.FieldError("message_ids", "This list may not be empty.")
	}
	if len(cmd.MessageIDs) > s.limits.MaxReadBatch {
		return Read{}, domain.FieldError("message_ids", fmt.Sprintf("Ensure this field has no more than %d elements.", s.limits.MaxReadBatch))
	}
	c, _, err := s.loadConversation(ctx, cmd.ConversationID)
	if err != nil {
		return Read{}, err
	}
	if err := c.conv.CheckMember(a.UserID); err != nil {
		return Read{}, err
	}
	ids := slices.Clone(cmd.MessageIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	inRoom, unread, err := s.lookups.ReceiptTargets(ctx, cmd.ConversationID, a.UserID, ids)
	if err != nil {
		return Read{}, fmt.Errorf("mark read: %w", err)
	}
	if len(inRoom) != len(ids) {
		var bad []string
		for _, id := range ids {
			if !slices.Contains(inRoom, id) {
				bad = append(bad, fmt.Sprint(id))
			}
		}
		return Read{}, domain.FieldError("message_ids", "Messages not in this conversation: "+strings.Join(bad, ", ")+".")
	}
	if len(unread) == 0 {
		return Read{}, nil
	}
	data, at, err := s.encode(a, nil, domain.MessagesRead{ConversationID: cmd.ConversationID, ReaderID: a.UserID, MessageIDs: unread})
	if err != nil {
		return Read{}, err
	}
	res, err := s.store.Append(ctx, domain.ReceiptStream(cmd.ConversationID, a.UserID), eventstore.Any(), data...)
	if err != nil {
		return Read{}, fmt.Errorf("mark read: %w", err)
	}
	return Read{Written: Written{Position: res.Position, At: at}, MessageIDs: unread}, nil
}
