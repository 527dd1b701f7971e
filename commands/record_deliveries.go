package commands

import (
	"context"
	"fmt"
	"slices"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// RecordDeliveries records that messages of a conversation reached one of
// their receivers (a socket of theirs got them, or a list showed them).
// The caller passes only ids the receiver has not had delivered yet (see
// Deliveries); the read model ignores the rest, so a repeat is harmless.
// Receipts go to a stream of their own per conversation and receiver,
// appended with any revision: they never conflict with sends or reads.
func (s *Service) RecordDeliveries(ctx context.Context, conversation, receiver int64, ids []int64) (_ Written, err error) {
	defer s.observe("record_deliveries", s.now(), &err)
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return Written{}, nil
	}
	a := Actor{UserID: receiver, RequestID: "delivery"}
	data, at, err := s.encode(a, nil, domain.MessagesDelivered{ConversationID: conversation, ReceiverID: receiver, MessageIDs: ids})
	if err != nil {
		return Written{}, err
	}
	res, err := s.store.Append(ctx, domain.DeliveryStream(conversation, receiver), eventstore.Any(), data...)
	if err != nil {
		return Written{}, fmt.Errorf("record deliveries: %w", err)
	}
	return Written{Position: res.Position, At: at}, nil
}
