package domain

import (
	"maps"
	"slices"
)

// Personal data in the log (the right to be forgotten).
//
// The log is append-only: what is written in it cannot be erased. So the
// personal fields of an event are written encrypted with a key of the user
// they belong to, kept outside the log; forgetting the user deletes the key
// (crypto-shredding), and every reader sees the placeholders below instead.
// This file is the one table of which fields of which event are personal and
// whose they are; the shred package enforces it on every append and read.
// TestPersonalDataDeclared fails when an event type is registered without
// being declared here, so a new event cannot leak personal data silently.

// TypeUserForgotten is the wire name of UserForgotten.
const TypeUserForgotten = "chat.user_forgotten"

// UserForgotten records that a user was forgotten: their key is gone, so
// their personal data in the log reads as placeholders from then on, and
// the read model rewrites what it holds of them. It is the last event of
// the stream user-<id>.
type UserForgotten struct {
	UserID int64 `json:"user_id"`
}

func (UserForgotten) EventType() string { return TypeUserForgotten }

// What a forgotten user's personal data reads as.
const (
	// ForgottenText is the text of a forgotten user's messages, and the
	// name and description of the rooms they named.
	ForgottenText = "[deleted]"
	// ForgottenUsername is the name of a forgotten user. It is no valid
	// username (it holds a space), so nobody can register or log in as it.
	ForgottenUsername = "deleted user"
)

// PersonalField is one personal member of an event's JSON payload and what
// it reads as once its owner is forgotten (a JSON value).
type PersonalField struct {
	Name      string
	Forgotten string
}

// Personal declares the personal data of an event type.
type Personal struct {
	// Owner names the members that may hold the owner's user id, the first
	// present wins (old payload versions used other names).
	Owner []string
	// Fields are the personal members. A member that is absent or null
	// stays so: there is nothing in it to hide.
	Fields []PersonalField
}

// Member returns the owner or field name of p that name spells (p's own
// string, so that nothing is allocated): the shredder keeps only these
// members of a payload.
func (p Personal) Member(name []byte) (string, bool) {
	for _, o := range p.Owner {
		if string(name) == o {
			return o, true
		}
	}
	for _, f := range p.Fields {
		if string(name) == f.Name {
			return f.Name, true
		}
	}
	return "", false
}

var (
	forgottenText     = PersonalField{Name: "text", Forgotten: `"` + ForgottenText + `"`}
	forgottenName     = PersonalField{Name: "name", Forgotten: `"` + ForgottenText + `"`}
	forgottenDesc     = PersonalField{Name: "description", Forgotten: `"` + ForgottenText + `"`}
	forgottenUsername = PersonalField{Name: "username", Forgotten: `"` + ForgottenUsername + `"`}
)

// PersonalData returns, by wire name, the event types that hold personal
// data. The table is built anew on each call: callers may keep it.
func PersonalData() map[string]Personal {
	return map[string]Personal{
		// Version 1 of chat.user_registered held the password hash: it goes
		// with the user too (an empty hash sets no credential).
		TypeUserRegistered:        {Owner: []string{"user_id"}, Fields: []PersonalField{forgottenUsername, {Name: "password_hash", Forgotten: `""`}}},
		TypeUsernameReserved:      {Owner: []string{"user_id"}, Fields: []PersonalField{forgottenUsername}},
		TypeRegistrationAbandoned: {Owner: []string{"user_id"}, Fields: []PersonalField{forgottenUsername}},
		TypeConversationCreated:   {Owner: []string{"created_by"}, Fields: []PersonalField{forgottenName, forgottenDesc}},
		TypeConversationUpdated:   {Owner: []string{"updated_by"}, Fields: []PersonalField{forgottenName, forgottenDesc}},
		// Version 1 named the sender "sender" and held one "attachment" URL.
		TypeMessageSent: {Owner: []string{"sender_id", "sender"}, Fields: []PersonalField{
			forgottenText, {Name: "attachment_picture", Forgotten: "null"}, {Name: "attachment_video", Forgotten: "null"},
			{Name: "attachment", Forgotten: `""`},
		}},
		TypeMessageEdited: {Owner: []string{"editor_id"}, Fields: []PersonalField{forgottenText}},
	}
}

// NoPersonalData lists the event types declared to hold no personal data:
// ids, times, hashes of invites, emoji.
func NoPersonalData() []string {
	return []string{
		TypeMemberJoined, TypeMemberLeft, TypeMessagesRead, TypeDirectChatClaimed, TypeInviteCreated,
		TypeMessageDeleted, TypeReactionAdded, TypeReactionRemoved, TypeMessagesDelivered, TypeAdminPromoted,
		TypeUserForgotten,
	}
}

// Types returns the wire names of every registered event type, sorted.
func (r *Registry) Types() []string { return slices.Sorted(maps.Keys(r.types)) }

// registerPersonal adds the events of this file to r.
func registerPersonal(r *Registry) {
	register[UserForgotten](r, 1, nil)
}
