package domain

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxReactions is the number of distinct emoji one message may carry.
const MaxReactions = 20

// Errors of a message's life after it is sent (API.md section 8).
var (
	ErrNotSender        = Errorf(KindForbidden, "Only its sender may edit a message.")
	ErrNotSenderOrAdmin = Errorf(KindForbidden, "Only its sender or an admin of the room may delete a message.")
	ErrMessageDeleted   = Errorf(KindInvalid, "This message has been deleted.")
	ErrTooManyReactions = FieldError("emoji", fmt.Sprintf("A message can carry at most %d different reactions.", MaxReactions))
	ErrReplyTo          = FieldError("reply_to", "Not a message of this conversation.")
	ErrBlankEdit        = FieldError("text", "This field may not be blank.")
)

// MessageState is what the rules of a message's life need to know of one
// message: whose it is, whether it is deleted, and its reactions. It is
// built from the message's events (Apply); which events those are, and
// from where, is the write side's business (commands).
type MessageState struct {
	ID             int64
	ConversationID int64
	SenderID       int64
	Deleted        bool
	// Reactions maps each emoji to the users who put it on, ascending.
	Reactions map[string][]int64
}

// Exists reports whether the message was sent.
func (m *MessageState) Exists() bool { return m.SenderID != 0 }

// Clone returns a deep copy.
func (m *MessageState) Clone() *MessageState {
	d := *m
	d.Reactions = make(map[string][]int64, len(m.Reactions))
	for e, us := range m.Reactions {
		d.Reactions[e] = slices.Clone(us)
	}
	return &d
}

// Apply evolves the state by one event; events of other messages are
// ignored.
func (m *MessageState) Apply(e Event) {
	if m.Reactions == nil {
		m.Reactions = map[string][]int64{}
	}
	switch e := e.(type) {
	case MessageSent:
		if e.MessageID == m.ID {
			m.ConversationID, m.SenderID = e.ConversationID, e.SenderID
		}
	case MessageDeleted:
		if e.MessageID == m.ID {
			m.Deleted = true
		}
	case ReactionAdded:
		if e.MessageID == m.ID && !m.Reacted(e.UserID, e.Emoji) {
			us := append(m.Reactions[e.Emoji], e.UserID)
			slices.Sort(us)
			m.Reactions[e.Emoji] = us
		}
	case ReactionRemoved:
		if e.MessageID == m.ID {
			us := slices.DeleteFunc(slices.Clone(m.Reactions[e.Emoji]), func(u int64) bool { return u == e.UserID })
			if len(us) == 0 {
				delete(m.Reactions, e.Emoji)
			} else {
				m.Reactions[e.Emoji] = us
			}
		}
	}
}

// Reacted reports whether user has put emoji on the message.
func (m *MessageState) Reacted(user int64, emoji string) bool {
	return slices.Contains(m.Reactions[emoji], user)
}

// Emoji returns the distinct emoji on the message, sorted.
func (m *MessageState) Emoji() []string { return slices.Sorted(maps.Keys(m.Reactions)) }

// checkMessage is common to every change of a message: the room exists,
// the actor is a member, the message is one of the room's.
func (c *Conversation) checkMessage(actor int64, m *MessageState) error {
	if err := c.CheckMember(actor); err != nil {
		return err
	}
	if !m.Exists() || m.ConversationID != c.ID {
		return ErrMessageNotFound
	}
	return nil
}

// CheckText validates a message's text as a send does.
func (l Limits) CheckText(text string) error {
	if len(text) > l.MaxTextBytes {
		return FieldError("text", fmt.Sprintf("Ensure this field has no more than %d bytes.", l.MaxTextBytes))
	}
	if !utf8.ValidString(text) {
		return FieldError("text", "Text must be valid UTF-8.")
	}
	if strings.ContainsRune(text, 0) {
		return FieldError("text", NullCharactersMessage)
	}
	return nil
}

// Edit decides the edit of a message by editor: only its sender, while a
// member, may replace its text, with text a send would accept (not blank:
// an edit has no attachment to stand for it), and never once it is deleted.
func (c *Conversation) Edit(m *MessageState, editor int64, text string, l Limits) ([]Event, error) {
	if err := c.checkMessage(editor, m); err != nil {
		return nil, err
	}
	if m.SenderID != editor {
		return nil, ErrNotSender
	}
	if m.Deleted {
		return nil, ErrMessageDeleted
	}
	if err := l.CheckText(text); err != nil {
		return nil, err
	}
	if text == "" {
		return nil, ErrBlankEdit
	}
	return []Event{MessageEdited{ConversationID: c.ID, MessageID: m.ID, EditorID: editor, Text: text}}, nil
}

// Delete decides the deletion of a message by its sender or an admin of
// the room, both while members. Deleting a deleted message decides
// nothing: a retried delete succeeds.
func (c *Conversation) Delete(m *MessageState, by int64) ([]Event, error) {
	if err := c.checkMessage(by, m); err != nil {
		return nil, err
	}
	if m.SenderID != by && !c.IsAdmin(by) {
		return nil, ErrNotSenderOrAdmin
	}
	if m.Deleted {
		return nil, nil
	}
	return []Event{MessageDeleted{ConversationID: c.ID, MessageID: m.ID, DeletedBy: by}}, nil
}

// React decides putting emoji on a message (add) or taking it off, by a
// member. Both are idempotent: what is already so decides nothing. A
// deleted message takes no reactions, and a message at most MaxReactions
// distinct emoji.
func (c *Conversation) React(m *MessageState, user int64, emoji string, add bool) ([]Event, error) {
	if err := c.checkMessage(user, m); err != nil {
		return nil, err
	}
	if !ValidEmoji(emoji) {
		return nil, ErrBadEmoji
	}
	if m.Deleted {
		return nil, ErrMessageDeleted
	}
	reacted := m.Reacted(user, emoji)
	switch {
	case add && reacted, !add && !reacted:
		return nil, nil
	case !add:
		return []Event{ReactionRemoved{ConversationID: c.ID, MessageID: m.ID, UserID: user, Emoji: emoji}}, nil
	}
	if _, onIt := m.Reactions[emoji]; !onIt && len(m.Reactions) >= MaxReactions {
		return nil, ErrTooManyReactions
	}
	return []Event{ReactionAdded{ConversationID: c.ID, MessageID: m.ID, UserID: user, Emoji: emoji}}, nil
}
