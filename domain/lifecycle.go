package domain

import "fmt"

// The events of a message's life after it is sent, and of a group's
// administration (API.md section 8). Each is appended to the stream of the
// room it concerns, except delivery receipts, which live beside the read
// receipts out of the way of sends.
const (
	TypeMessageEdited       = "chat.message_edited"
	TypeMessageDeleted      = "chat.message_deleted"
	TypeReactionAdded       = "chat.reaction_added"
	TypeReactionRemoved     = "chat.reaction_removed"
	TypeMessagesDelivered   = "chat.messages_delivered"
	TypeConversationUpdated = "chat.conversation_updated"
	TypeAdminPromoted       = "chat.admin_promoted"
)

// MessageEdited replaces a message's text; every version stays in the log.
type MessageEdited struct {
	ConversationID int64  `json:"conversation_id"`
	MessageID      int64  `json:"message_id"`
	EditorID       int64  `json:"editor_id"`
	Text           string `json:"text"`
}

// MessageDeleted leaves a tombstone: the message keeps its id and place,
// its text and attachments are no longer shown, and its files are no
// longer served.
type MessageDeleted struct {
	ConversationID int64 `json:"conversation_id"`
	MessageID      int64 `json:"message_id"`
	DeletedBy      int64 `json:"deleted_by"`
}

// ReactionAdded puts one user's emoji on a message.
type ReactionAdded struct {
	ConversationID int64  `json:"conversation_id"`
	MessageID      int64  `json:"message_id"`
	UserID         int64  `json:"user_id"`
	Emoji          string `json:"emoji"`
}

// ReactionRemoved takes one user's emoji off a message.
type ReactionRemoved struct {
	ConversationID int64  `json:"conversation_id"`
	MessageID      int64  `json:"message_id"`
	UserID         int64  `json:"user_id"`
	Emoji          string `json:"emoji"`
}

// MessagesDelivered records that messages reached one of their receivers
// (a socket of theirs received them, or they listed them).
type MessagesDelivered struct {
	ConversationID int64   `json:"conversation_id"`
	ReceiverID     int64   `json:"receiver_id"`
	MessageIDs     []int64 `json:"message_ids"`
}

// ConversationUpdated renames or redescribes a group; a nil field is
// unchanged.
type ConversationUpdated struct {
	ConversationID int64   `json:"conversation_id"`
	UpdatedBy      int64   `json:"updated_by"`
	Name           *string `json:"name,omitempty"`
	Description    *string `json:"description,omitempty"`
}

// AdminPromoted makes a member an admin of a group. By is the admin who
// did it, or 0 when the last admin left and the longest-standing member
// took over.
type AdminPromoted struct {
	ConversationID int64 `json:"conversation_id"`
	UserID         int64 `json:"user_id"`
	By             int64 `json:"by,omitempty"`
}

func (MessageEdited) EventType() string       { return TypeMessageEdited }
func (MessageDeleted) EventType() string      { return TypeMessageDeleted }
func (ReactionAdded) EventType() string       { return TypeReactionAdded }
func (ReactionRemoved) EventType() string     { return TypeReactionRemoved }
func (MessagesDelivered) EventType() string   { return TypeMessagesDelivered }
func (ConversationUpdated) EventType() string { return TypeConversationUpdated }
func (AdminPromoted) EventType() string       { return TypeAdminPromoted }

// DeliveryStream is the stream of the delivery receipts of one receiver in
// one room, beside ReceiptStream's read receipts.
func DeliveryStream(conv, receiver int64) string {
	return fmt.Sprintf("deliveries-%d-%d", conv, receiver)
}

// registerLifecycle adds the events of this file to r.
func registerLifecycle(r *Registry) {
	register[MessageEdited](r, 1, nil)
	register[MessageDeleted](r, 1, nil)
	register[ReactionAdded](r, 1, nil)
	register[ReactionRemoved](r, 1, nil)
	register[MessagesDelivered](r, 1, nil)
	register[ConversationUpdated](r, 1, nil)
	register[AdminPromoted](r, 1, nil)
}
