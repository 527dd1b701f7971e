package realtime

import (
	"encoding/json"
	"slices"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// sentInfo is what delivery receipts need of a message event.
type sentInfo struct {
	room, id  int64
	receivers []int64
}

// messageSent returns the room, id and receivers of a message event; nil
// for other events.
func messageSent(e eventstore.RecordedEvent) *sentInfo {
	if e.Type != domain.TypeMessageSent {
		return nil
	}
	var m struct {
		ConversationID int64   `json:"conversation_id"`
		MessageID      int64   `json:"message_id"`
		Receivers      []int64 `json:"receivers"`
	}
	if json.Unmarshal(e.Data, &m) != nil {
		return nil
	}
	return &sentInfo{room: m.ConversationID, id: m.MessageID, receivers: m.Receivers}
}

// delivered tells Config.Delivered that a message frame went to a session
// of one of the message's receivers. It must not block (the recorder only
// notes it).
func (h *Hub) delivered(so *Session, m *sentInfo) {
	if m == nil || h.cfg.Delivered == nil || !slices.Contains(m.receivers, so.user) {
		return
	}
	h.cfg.Delivered(m.room, so.user, m.id)
}
