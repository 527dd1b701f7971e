package http

import (
	"context"

	"github.com/evchat/evchat/domain"
)

// lifeFrame renders the frame of an event of a message's life (ok is
// false for other events): message_edited and message_deleted carry every
// field of the message, and reaction who put which emoji on or off.
//
// Frames are rendered once the read model shows their event (live ones
// after the projection, resumed ones up to its watermark), so an edit's or
// a delete's frame takes the message from the read model, with the
// event's own change over it: the edit's text and time, or the tombstone.
// What changed after the event (reactions, read receipts) shows as it is
// now; those changes have frames of their own.
func (s *Server) lifeFrame(ev domain.Event, md domain.Metadata, pos, base string) (v any, room int64, ok bool) {
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
		ctx, cancel := context.WithTimeout(context.Background(), stateFrameWait)
		defer cancel()
		m, err := s.rm.Message(ctx, id)
		if err != nil {
			s.log.Error("render message frame", "message", id, "err", err)
			return nil, room, false
		}
		mv := newMessageView(m, mediaAt(base))
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
		return nil, 0, false
	}
	return v, room, true
}
