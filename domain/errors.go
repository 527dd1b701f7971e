// Package domain holds the chat's aggregates, their events and rules. It
// knows no technology: standard library only, no I/O.
package domain

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the boundaries (HTTP status, exit codes).
type Kind uint8

const (
	KindInternal Kind = iota
	KindInvalid
	KindUnauthorized
	KindForbidden
	KindNotFound
	KindConflict
	KindTooLarge
	KindUnsupported
	KindRateLimited
	// KindUnavailable: a dependency (the database, the event store) cannot
	// be reached, or the service is not ready yet; the client may retry.
	KindUnavailable
)

// Error is a classified error with a message fit for clients. Fields, when
// set, carry per-field messages (a validation error).
type Error struct {
	Kind    Kind
	Message string
	Fields  map[string][]string
}

func (e *Error) Error() string {
	if e.Message == "" && len(e.Fields) > 0 {
		return fmt.Sprintf("invalid fields: %v", e.Fields)
	}
	return e.Message
}

// Errorf returns an *Error of kind k.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid-kind error about one field.
func FieldError(field, message string) *Error {
	return &Error{Kind: KindInvalid, Fields: map[string][]string{field: {message}}}
}

// KindOf returns the kind of err: the kind of the first *Error in its chain,
// or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Errors the rules return; compare with errors.Is.
var (
	ErrConversationNotFound = Errorf(KindNotFound, "Chatroom not found")
	ErrMessageNotFound      = Errorf(KindNotFound, "Message not found")
	ErrNotMember            = Errorf(KindForbidden, "You are not a member of this conversation")
	ErrNotMemberToLeave     = Errorf(KindInvalid, "User is not a member of the conversation")
	ErrRoomFull             = Errorf(KindInvalid, "Chatroom is full")
	ErrNotParty             = Errorf(KindForbidden, "Only its two participants may join a direct chat")
	ErrEmptyMessage         = Errorf(KindInvalid, "A message needs text or an attachment")
	ErrUsernameTaken        = FieldError("username", "A user with that username already exists.")
	ErrUnavailable          = Errorf(KindUnavailable, "Service temporarily unavailable.")
)
