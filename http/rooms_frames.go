package http

import (
	"context"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

// roomReader reads a room as the read model shows it now.
type roomReader func(ctx context.Context, id int64) (readmodel.Chatroom, error)

// roomNow is the server's roomReader.
func (s *Server) roomNow(ctx context.Context, id int64) (readmodel.Chatroom, error) {
	return s.rm.Chatroom(ctx, id)
}

// roomFrameWait bounds the read of a room for its chatroom_updated frame.
const roomFrameWait = 5 * time.Second

// withBy adds "by" to a member frame when an admin acted (by is not 0).
func withBy(v map[string]any, by int64) map[string]any {
	if by != 0 {
		v["by"] = by
	}
	return v
}

// roomsFrame renders the frames of delivery receipts and group
// administration: "delivered" (to the whole room, as "read" is), and
// "chatroom_updated" for a rename or a promotion. A chatroom_updated frame
// carries every field of the room as the read model shows it when the frame
// is rendered, which is at or after its event (fan-out waits for the read
// model; a resume renders it later): its position tells which change it
// reports, its fields the room's state since.
func roomsFrame(ev domain.Event, pos, base string, roomNow roomReader) (any, int64, bool) {
	switch ev := ev.(type) {
	case domain.MessagesDelivered:
		return map[string]any{"type": "delivered", "conversation": ev.ConversationID, "user": ev.ReceiverID,
			"message_ids": ev.MessageIDs, "position": pos}, ev.ConversationID, true
	case domain.ConversationUpdated:
		return chatroomUpdatedFrame(ev.ConversationID, pos, base, roomNow)
	case domain.AdminPromoted:
		return chatroomUpdatedFrame(ev.ConversationID, pos, base, roomNow)
	}
	return nil, 0, false
}

func chatroomUpdatedFrame(id int64, pos, base string, roomNow roomReader) (any, int64, bool) {
	if roomNow == nil {
		return nil, 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), roomFrameWait)
	defer cancel()
	room, err := roomNow(ctx, id)
	if err != nil {
		return nil, 0, false
	}
	view := newChatroomView(room, func(key string) string { return base + "/media/" + key + "/" }, false)
	return struct {
		Type string `json:"type"`
		chatroomView
		Position string `json:"position"`
	}{"chatroom_updated", view, pos}, id, true
}
