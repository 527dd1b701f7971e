package http

import (
	"context"
	"time"

	"github.com/evchat/evchat/domain"
)

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
func (s *Server) roomsFrame(ev domain.Event, pos, base string) (any, int64, bool) {
	switch ev := ev.(type) {
	case domain.MessagesDelivered:
		return map[string]any{"type": "delivered", "conversation": ev.ConversationID, "user": ev.ReceiverID,
			"message_ids": ev.MessageIDs, "position": pos}, ev.ConversationID, true
	case domain.ConversationUpdated:
		return s.chatroomUpdatedFrame(ev.ConversationID, pos, base)
	case domain.AdminPromoted:
		return s.chatroomUpdatedFrame(ev.ConversationID, pos, base)
	}
	return nil, 0, false
}

func (s *Server) chatroomUpdatedFrame(id int64, pos, base string) (any, int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), stateFrameWait)
	defer cancel()
	room, err := s.rm.Chatroom(ctx, id)
	if err != nil {
		return nil, 0, false
	}
	view := newChatroomView(room, mediaAt(base), false)
	return struct {
		Type string `json:"type"`
		chatroomView
		Position string `json:"position"`
	}{"chatroom_updated", view, pos}, id, true
}

// stateFrameWait bounds the read-model look-up of a frame that shows a
// message's or a room's state (message_edited, message_deleted,
// chatroom_updated).
const stateFrameWait = 5 * time.Second

// stateFrame renders the frames frameOf leaves to the events of a
// message's life and of group administration.
func (s *Server) stateFrame(ev domain.Event, md domain.Metadata, pos, base string) (any, int64, bool) {
	if v, room, ok := s.lifeFrame(ev, md, pos, base); ok {
		return v, room, true
	}
	return s.roomsFrame(ev, pos, base)
}
