package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// Wire names of the events. A wire name is never renamed; a changed shape
// gets a new version and an upcaster (see Registry).
const (
	TypeUsernameReserved      = "chat.username_reserved"
	TypeUserRegistered        = "chat.user_registered"
	TypeConversationCreated   = "chat.conversation_created"
	TypeMemberJoined          = "chat.member_joined"
	TypeMemberLeft            = "chat.member_left"
	TypeMessageSent           = "chat.message_sent"
	TypeMessagesRead          = "chat.messages_read"
	TypeRegistrationAbandoned = "chat.registration_abandoned"
	TypeDirectChatClaimed     = "chat.direct_chat_claimed"
	TypeInviteCreated         = "chat.invite_created"
)

// Event is a fact that happened. EventType is its stable wire name.
type Event interface {
	EventType() string
}

// UsernameReserved claims a lower-cased username for a user id in the
// stream username-<name>. The first is appended with "no stream" expected,
// which makes usernames unique on every event store. A later one takes the
// name over from a registration that reserved it and never created its user
// (it died between the two appends), once a RegistrationAbandoned has closed
// that user's stream.
type UsernameReserved struct {
	Username string `json:"username"`
	UserID   int64  `json:"user_id"`
}

// RegistrationAbandoned closes the stream user-<id> of a registration that
// reserved its username and never created its user, before a new
// registration takes the name over. Both it and UserRegistered are appended
// to that stream with "no stream" expected, so exactly one of them lands:
// either the late registration created its user first and keeps the name,
// or it can no longer create it. No user ever has this id.
type RegistrationAbandoned struct {
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
}

// UserRegistered creates a user. Since version 2 it only records that a
// password was set: the hash lives in the write side's credentials table,
// never in the log, which cannot forget it.
//
// LegacyPasswordHash is never written: it carries the hash of a version 1
// event (which held it as "password_hash") out of the upcaster, so that a
// projection of an old log can move it into the credentials table.
type UserRegistered struct {
	UserID             int64  `json:"user_id"`
	Username           string `json:"username"`
	PasswordSet        bool   `json:"password_set"`
	LegacyPasswordHash string `json:"legacy_password_hash,omitempty"`
}

// DirectChatClaimed claims the one direct chat of two people, in the stream
// direct-<lower id>-<higher id>, appended with "no stream" expected: of two
// concurrent creations of a direct chat between them, one claims the pair
// and both answer with its conversation. The conversation is created after
// the claim; whoever finds a claim without its conversation (its creator
// died in between) creates it, with "no stream" expected as well.
type DirectChatClaimed struct {
	UserA          int64 `json:"user_a"`
	UserB          int64 `json:"user_b"`
	ConversationID int64 `json:"conversation_id"`
}

// Membership pairs a member with the id of their membership.
type Membership struct {
	UserID       int64 `json:"user_id"`
	MembershipID int64 `json:"membership_id"`
}

// ConversationCreated opens a chatroom with its first members (the creator first).
type ConversationCreated struct {
	ConversationID int64            `json:"conversation_id"`
	Type           ConversationType `json:"type"`
	Name           *string          `json:"name"`
	Description    *string          `json:"description"`
	CreatedBy      int64            `json:"created_by"`
	Members        []Membership     `json:"members"`
	// InviteOnly groups are joined with an invite (absent: open).
	InviteOnly bool `json:"invite_only,omitempty"`
}

// MemberJoined adds a member. By is the admin who added them (0: they
// joined themselves).
type MemberJoined struct {
	ConversationID int64 `json:"conversation_id"`
	UserID         int64 `json:"user_id"`
	MembershipID   int64 `json:"membership_id"`
	By             int64 `json:"by,omitempty"`
}

// MemberLeft removes a member. By is the admin who removed them (0: they
// left).
type MemberLeft struct {
	ConversationID int64 `json:"conversation_id"`
	UserID         int64 `json:"user_id"`
	MembershipID   int64 `json:"membership_id"`
	By             int64 `json:"by,omitempty"`
}

// Attachment is a stored file, named by its content hash.
type Attachment struct {
	Key         string `json:"key"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// MessageSent is a message. Receivers are the members other than the
// sender at the moment of sending, fixed for ever.
type MessageSent struct {
	ConversationID int64       `json:"conversation_id"`
	MessageID      int64       `json:"message_id"`
	SenderID       int64       `json:"sender_id"`
	Receivers      []int64     `json:"receivers"`
	Text           string      `json:"text"`
	Picture        *Attachment `json:"attachment_picture,omitempty"`
	Video          *Attachment `json:"attachment_video,omitempty"`
	// ReplyTo is the message of the same room this one answers (0: none).
	ReplyTo int64 `json:"reply_to,omitempty"`
}

// MessagesRead marks messages read by one of their receivers. It lives in a
// stream per conversation and reader (receipts-<conversation>-<reader>), out
// of the way of message sends.
type MessagesRead struct {
	ConversationID int64   `json:"conversation_id"`
	ReaderID       int64   `json:"reader_id"`
	MessageIDs     []int64 `json:"message_ids"`
}

func (UsernameReserved) EventType() string      { return TypeUsernameReserved }
func (UserRegistered) EventType() string        { return TypeUserRegistered }
func (ConversationCreated) EventType() string   { return TypeConversationCreated }
func (MemberJoined) EventType() string          { return TypeMemberJoined }
func (MemberLeft) EventType() string            { return TypeMemberLeft }
func (MessageSent) EventType() string           { return TypeMessageSent }
func (MessagesRead) EventType() string          { return TypeMessagesRead }
func (RegistrationAbandoned) EventType() string { return TypeRegistrationAbandoned }
func (DirectChatClaimed) EventType() string     { return TypeDirectChatClaimed }

// Metadata says who caused an event, when, and in answer to what. It is what
// makes the log an audit trail.
type Metadata struct {
	ActorID       int64     `json:"actor_id,omitempty"`
	RequestID     string    `json:"request_id,omitempty"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	Time          time.Time `json:"time"`
	// Version is the payload's schema version; absent means 1.
	Version int `json:"v,omitempty"`
}

// Stream names.
func UserStream(id int64) string              { return fmt.Sprintf("user-%d", id) }
func UsernameStream(lower string) string      { return "username-" + lower }
func ConversationStream(id int64) string      { return fmt.Sprintf("conversation-%d", id) }
func ReceiptStream(conv, reader int64) string { return fmt.Sprintf("receipts-%d-%d", conv, reader) }

// DirectStream is the claim stream of the direct chat of two users, in
// either order.
func DirectStream(a, b int64) string { return fmt.Sprintf("direct-%d-%d", min(a, b), max(a, b)) }

// Upcaster turns the payload of an old version of an event into the next
// version's payload.
type Upcaster func(data []byte) ([]byte, error)

type registration struct {
	current  int
	decode   func([]byte) (Event, error)
	upcaster map[int]Upcaster // from version → to version+1
}

// Registry maps wire names to payload types and upgrades old versions on
// read. Build it with NewRegistry; it is read-only afterwards.
type Registry struct {
	types map[string]registration
}

func register[E Event](r *Registry, current int, upcasters map[int]Upcaster) {
	var zero E
	r.types[zero.EventType()] = registration{
		current:  current,
		upcaster: upcasters,
		decode: func(b []byte) (Event, error) {
			var e E
			if err := json.Unmarshal(b, &e); err != nil {
				return nil, err
			}
			return e, nil
		},
	}
}

// fastDecode replaces the decoder of an event type with one that decodes as
// json.Unmarshal does, faster.
func (r *Registry) fastDecode(eventType string, decode func([]byte) (Event, error)) {
	reg := r.types[eventType]
	reg.decode = decode
	r.types[eventType] = reg
}

// NewRegistry returns the registry of every event of the chat, with the
// upcasters of their old versions.
func NewRegistry() *Registry {
	r := &Registry{types: map[string]registration{}}
	register[UsernameReserved](r, 1, nil)
	// Version 1 of chat.user_registered carried the password hash; version
	// 2 only says that a password was set.
	register[UserRegistered](r, 2, map[int]Upcaster{1: upcastUserRegisteredV1})
	register[ConversationCreated](r, 1, nil)
	register[MemberJoined](r, 1, nil)
	register[MemberLeft](r, 1, nil)
	// Version 1 of chat.message_sent had a single "attachment" URL string and
	// "sender" instead of "sender_id"; version 2 is the current shape.
	register[MessageSent](r, 2, map[int]Upcaster{1: upcastMessageSentV1})
	r.fastDecode(TypeMessageSent, decodeMessageSent)
	register[MessagesRead](r, 1, nil)
	register[RegistrationAbandoned](r, 1, nil)
	register[DirectChatClaimed](r, 1, nil)
	register[InviteCreated](r, 1, nil)
	registerLifecycle(r)
	registerPersonal(r)
	return r
}

// Version returns the current payload version of an event type (0 if unknown).
func (r *Registry) Version(eventType string) int { return r.types[eventType].current }

// Encode returns the wire name and JSON payload of e.
func (r *Registry) Encode(e Event) (string, []byte, error) {
	if _, ok := r.types[e.EventType()]; !ok {
		return "", nil, fmt.Errorf("encode event: unregistered type %q", e.EventType())
	}
	b, err := json.Marshal(e)
	return e.EventType(), b, err
}

// DecodeRecorded returns the event and metadata of an event as the log
// holds it (its id for errors, wire name, payload, metadata and the log's
// time), upcast to the current version. The metadata's time falls back to
// the log's, in microseconds as the read model keeps it. ok is false for
// events of no interest to the chat (unknown types written by other
// programs).
func (r *Registry) DecodeRecorded(id, eventType string, data, metadata []byte, created time.Time) (Event, Metadata, bool, error) {
	var md Metadata
	if r.Version(eventType) == 0 {
		return nil, md, false, nil
	}
	if len(metadata) > 0 {
		var err error
		if md, err = ParseMetadata(metadata); err != nil {
			return nil, md, false, fmt.Errorf("event %s metadata: %w", id, err)
		}
	}
	if md.Time.IsZero() {
		md.Time = created
	}
	md.Time = md.Time.UTC().Truncate(time.Microsecond)
	ev, err := r.Decode(eventType, md.Version, data)
	if err != nil {
		return nil, md, false, fmt.Errorf("event %s: %w", id, err)
	}
	return ev, md, true, nil
}

// Decode returns the event of the given wire name and payload version,
// upcast to the current version.
func (r *Registry) Decode(eventType string, version int, data []byte) (Event, error) {
	reg, ok := r.types[eventType]
	if !ok {
		return nil, fmt.Errorf("decode event: unknown type %q", eventType)
	}
	if version == 0 {
		version = 1
	}
	for v := version; v < reg.current; v++ {
		up, ok := reg.upcaster[v]
		if !ok {
			return nil, fmt.Errorf("decode %s: no upcaster from version %d", eventType, v)
		}
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("decode %s: upcast from version %d: %w", eventType, v, err)
		}
	}
	if version > reg.current {
		return nil, fmt.Errorf("decode %s: version %d is newer than this program's %d", eventType, version, reg.current)
	}
	e, err := reg.decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", eventType, err)
	}
	return e, nil
}

// messageSentV1 is the first shape of chat.message_sent.
type messageSentV1 struct {
	ConversationID int64   `json:"conversation_id"`
	MessageID      int64   `json:"message_id"`
	Sender         int64   `json:"sender"`
	Receivers      []int64 `json:"receivers"`
	Text           string  `json:"text"`
	Attachment     string  `json:"attachment"`
	AttachmentType string  `json:"attachment_type"` // "picture" or "video"
}

func upcastMessageSentV1(data []byte) ([]byte, error) {
	var old messageSentV1
	if err := json.Unmarshal(data, &old); err != nil {
		return nil, err
	}
	m := MessageSent{
		ConversationID: old.ConversationID, MessageID: old.MessageID, SenderID: old.Sender,
		Receivers: old.Receivers, Text: old.Text,
	}
	if m.Receivers == nil {
		m.Receivers = []int64{}
	}
	if old.Attachment != "" {
		a := &Attachment{Key: old.Attachment}
		if old.AttachmentType == "video" {
			m.Video = a
		} else {
			m.Picture = a
		}
	}
	return json.Marshal(m)
}

// userRegisteredV1 is the first shape of chat.user_registered.
type userRegisteredV1 struct {
	UserID       int64  `json:"user_id"`
	Username     string `json:"username"`
	PasswordHash string `json:"password_hash"`
}

func upcastUserRegisteredV1(data []byte) ([]byte, error) {
	var old userRegisteredV1
	if err := json.Unmarshal(data, &old); err != nil {
		return nil, err
	}
	return json.Marshal(UserRegistered{
		UserID: old.UserID, Username: old.Username,
		PasswordSet: old.PasswordHash != "", LegacyPasswordHash: old.PasswordHash,
	})
}
