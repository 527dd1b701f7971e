package http

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// lifeFrameWait bounds the read-model look-up of an edit's or a delete's
// frame.
const lifeFrameWait = 5 * time.Second

// lifeFrame renders the frame of an event of a message's life (handled is
// false for other events): message_edited and message_deleted carry every
// field of the message, and reaction who put which emoji on or off.
//
// Frames are rendered once the read model shows their event (live ones
// after the projection, resumed ones up to its watermark), so an edit's or
// a delete's frame takes the message from the read model, with the
// event's own change over it: the edit's text and time, or the tombstone.
// What changed after the event (reactions, read receipts) shows as it is
// now; those changes have frames of their own.
func (s *Server) lifeFrame(e eventstore.RecordedEvent, base string) (frame []byte, room int64, ok, handled bool) {
	switch e.Type {
	case domain.TypeMessageEdited, domain.TypeMessageDeleted, domain.TypeReactionAdded, domain.TypeReactionRemoved:
	default:
		return nil, 0, false, false
	}
	if !strings.HasPrefix(e.Stream, "conversation-") {
		return nil, 0, false, true
	}
	ev, md, ok, err := s.cmd.Registry().DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
	if err != nil || !ok {
		return nil, 0, false, true
	}
	pos := e.Position.String()
	var v any
	switch ev := ev.(type) {
	case domain.ReactionAdded:
		room = ev.ConversationID
		v = map[string]any{"type": "reaction", "conversation": room, "message": ev.MessageID, "user": ev.UserID,
			"emoji": ev.Emoji, "added": true, "position": pos}
	case domain.ReactionRemoved:
		room = ev.ConversationID
		v = map[string]any{"type": "reaction", "conversation": room, "message": ev.MessageID, "user": ev.UserID,
			"emoji": ev.Emoji, "added": false, "position": pos}
	case domain.MessageEdited, domain.MessageDeleted:
		var id int64
		typ := "message_edited"
		if d, isDel := ev.(domain.MessageDeleted); isDel {
			id, room, typ = d.MessageID, d.ConversationID, "message_deleted"
		} else {
			ed := ev.(domain.MessageEdited)
			id, room = ed.MessageID, ed.ConversationID
		}
		ctx, cancel := context.WithTimeout(context.Background(), lifeFrameWait)
		defer cancel()
		m, err := s.rm.Message(ctx, id)
		if err != nil {
			s.log.Error("render message frame", "message", id, "err", err)
			return nil, room, false, true
		}
		mv := newMessageView(m, func(key string) string { return base + "/media/" + key + "/" })
		at := formatTime(md.Time)
		if ed, isEdit := ev.(domain.MessageEdited); isEdit && m.DeletedAt != nil {
			// Deleted since: a resumed edit shows the tombstone, not the
			// text the delete took away.
			mv.EditedAt = &at
		} else if isEdit {
			text := ed.Text
			mv.Text, mv.EditedAt, mv.DeletedAt, mv.UpdatedAt = &text, &at, nil, at
		} else {
			mv.Text, mv.AttachmentPicture, mv.AttachmentVideo, mv.DeletedAt, mv.UpdatedAt = nil, nil, nil, &at, at
		}
		mv.Position = pos
		v = struct {
			Type string `json:"type"`
			messageView
		}{typ, mv}
	default:
		return nil, 0, false, true
	}
	b, err := json.Marshal(v)
	return b, room, err == nil, true
}
