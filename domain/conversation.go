package domain

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ConversationType is "chat" (a direct chat of at most two) or "group".
type ConversationType string

const (
	Direct ConversationType = "chat"
	Group  ConversationType = "group"
)

// NullCharactersMessage is the field message for text with NUL characters,
// which neither PostgreSQL text nor jsonb can store.
const NullCharactersMessage = "Null characters are not allowed."

// Limits are the configurable bounds of the rules.
type Limits struct {
	MaxGroupMembers int // default 1024
	MaxTextBytes    int // default 64 KiB
	MaxNameRunes    int // 255
	MaxDescription  int // runes, default 4096
	MaxReadBatch    int // message ids in one read, default 1000
}

// DefaultLimits are the limits of the API contract.
func DefaultLimits() Limits {
	return Limits{MaxGroupMembers: 1024, MaxTextBytes: 64 << 10, MaxNameRunes: 255, MaxDescription: 4096, MaxReadBatch: 1000}
}

func (l Limits) capacity(t ConversationType) int {
	if t == Direct {
		return 2
	}
	return l.MaxGroupMembers
}

// Conversation is the state of a conversation-<id> stream: what the rules
// need, not the messages themselves.
type Conversation struct {
	ID          int64
	Type        ConversationType
	Name        *string
	Description *string
	CreatedBy   int64
	// LastMessageID is the id of the room's last message: ids rise in the
	// room's log order, so a new message needs a greater one.
	LastMessageID int64
	members       map[int64]int64 // user id → membership id
	// parties are the two people of a direct chat: its first two members,
	// whether they are members now or have left. Nobody else may join it.
	parties []int64
	// inviteOnly groups admit new members with an invite: invites maps
	// each invite's token hash to its expiry.
	inviteOnly bool
	invites    map[string]time.Time
	// admins may rename the group, add and remove members, promote members
	// and delete anyone's message. The creator is the first.
	admins map[int64]bool
}

// IsAdmin reports whether user is an admin of the conversation.
func (c *Conversation) IsAdmin(user int64) bool { return c.admins[user] }

// Admins returns the admin ids in ascending order.
func (c *Conversation) Admins() []int64 { return sortedKeys(c.admins) }

// Exists reports whether the conversation has been created.
func (c *Conversation) Exists() bool { return c.ID != 0 }

// MembershipOf returns the user's membership id and whether they are a member.
func (c *Conversation) MembershipOf(user int64) (int64, bool) {
	id, ok := c.members[user]
	return id, ok
}

// Members returns the member ids in ascending order.
func (c *Conversation) Members() []int64 { return sortedKeys(c.members) }

// sortedKeys returns the keys of m in ascending order, never nil.
func sortedKeys[V any](m map[int64]V) []int64 {
	return append(make([]int64, 0, len(m)), slices.Sorted(maps.Keys(m))...)
}

// Clone returns a deep copy, so a cached state can be evolved safely.
func (c *Conversation) Clone() *Conversation {
	d := *c
	d.parties = slices.Clone(c.parties)
	d.invites = maps.Clone(c.invites)
	d.admins = maps.Clone(c.admins)
	d.members = make(map[int64]int64, len(c.members))
	for k, v := range c.members {
		d.members[k] = v
	}
	return &d
}

// ShallowCopy returns a copy of c that shares its members, admins,
// invites and parties: only for applying MessageSent events, which change
// none of them (Clone copies everything).
func (c *Conversation) ShallowCopy() *Conversation {
	d := *c
	return &d
}

// Apply evolves the conversation by one event. Events of other kinds are ignored.
func (c *Conversation) Apply(e Event) {
	if c.members == nil {
		c.members = map[int64]int64{}
	}
	if c.admins == nil {
		c.admins = map[int64]bool{}
	}
	switch e := e.(type) {
	case ConversationCreated:
		c.ID, c.Type, c.Name, c.Description, c.CreatedBy = e.ConversationID, e.Type, e.Name, e.Description, e.CreatedBy
		c.inviteOnly = e.InviteOnly
		if _, ok := memberIn(e.Members, e.CreatedBy); ok {
			c.admins[e.CreatedBy] = true
		}
		for _, m := range e.Members {
			c.members[m.UserID] = m.MembershipID
			c.addParty(m.UserID)
		}
	case MemberJoined:
		c.members[e.UserID] = e.MembershipID
		c.addParty(e.UserID)
	case MemberLeft:
		delete(c.members, e.UserID)
		delete(c.admins, e.UserID)
	case AdminPromoted:
		if _, ok := c.members[e.UserID]; ok {
			c.admins[e.UserID] = true
		}
	case ConversationUpdated:
		if e.Name != nil {
			c.Name = e.Name
		}
		if e.Description != nil {
			c.Description = e.Description
		}
	case InviteCreated:
		if c.invites == nil {
			c.invites = map[string]time.Time{}
		}
		c.invites[e.TokenHash] = e.ExpiresAt
	case MessageSent:
		c.LastMessageID = max(c.LastMessageID, e.MessageID)
	}
}

// memberIn finds user among ms.
func memberIn(ms []Membership, user int64) (Membership, bool) {
	for _, m := range ms {
		if m.UserID == user {
			return m, true
		}
	}
	return Membership{}, false
}

// addParty records user as a party of a direct chat while it has fewer
// than two: a direct chat created alone gets its second party at the first
// join.
func (c *Conversation) addParty(user int64) {
	if c.Type == Direct && len(c.parties) < 2 && !slices.Contains(c.parties, user) {
		c.parties = append(c.parties, user)
		slices.Sort(c.parties)
	}
}

// Parties returns the two people of a direct chat (fewer while it has not
// had two members), ascending.
func (c *Conversation) Parties() []int64 { return slices.Clone(c.parties) }

// NewConversation is what a client asks for when creating a chatroom.
type NewConversation struct {
	Type        ConversationType
	Name        *string
	Description *string
	Creator     int64
	Members     []int64 // other members; duplicates and the creator are ignored
	InviteOnly  bool    // groups only
}

// Check validates the request on its own (the caller checks that members exist).
// It returns the member list to create, creator first, without duplicates.
func (n NewConversation) Check(l Limits) ([]int64, error) {
	fields := map[string][]string{}
	switch n.Type {
	case Direct, Group:
	default:
		fields["type"] = []string{fmt.Sprintf("%q is not a valid choice.", string(n.Type))}
	}
	if n.Name != nil && utf8.RuneCountInString(*n.Name) > l.MaxNameRunes {
		fields["name"] = []string{fmt.Sprintf("Ensure this field has no more than %d characters.", l.MaxNameRunes)}
	} else if n.Name != nil && strings.ContainsRune(*n.Name, 0) {
		fields["name"] = []string{NullCharactersMessage}
	}
	if n.Description != nil && utf8.RuneCountInString(*n.Description) > l.MaxDescription {
		fields["description"] = []string{fmt.Sprintf("Ensure this field has no more than %d characters.", l.MaxDescription)}
	} else if n.Description != nil && strings.ContainsRune(*n.Description, 0) {
		fields["description"] = []string{NullCharactersMessage}
	}
	members := []int64{n.Creator}
	for _, m := range n.Members {
		if m <= 0 {
			fields["members"] = []string{fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", m)}
			break
		}
		if !slices.Contains(members, m) {
			members = append(members, m)
		}
	}
	if n.InviteOnly && n.Type != Group {
		fields["invite_only"] = ErrInviteNotGroup.Fields["invite_only"]
	}
	if _, bad := fields["type"]; !bad && len(members) > l.capacity(n.Type) {
		fields["members"] = append(fields["members"], fmt.Sprintf("A %s can have at most %d members.", n.Type, l.capacity(n.Type)))
	}
	if len(fields) > 0 {
		return nil, &Error{Kind: KindInvalid, Fields: fields}
	}
	return members, nil
}

// Create decides the event that opens a conversation. membershipIDs are the
// ids of the memberships of members, in the same order.
func Create(id int64, n NewConversation, members, membershipIDs []int64) []Event {
	ms := make([]Membership, len(members))
	for i, u := range members {
		ms[i] = Membership{UserID: u, MembershipID: membershipIDs[i]}
	}
	return []Event{ConversationCreated{
		ConversationID: id, Type: n.Type, Name: n.Name, Description: n.Description,
		CreatedBy: n.Creator, Members: ms, InviteOnly: n.InviteOnly,
	}}
}

// CheckJoin tells whether user may join: it returns their existing
// membership id (already a member), or an error when the room does not exist,
// is a direct chat of two others (ErrNotParty) or is full. A zero id and nil error mean a new membership is needed.
func (c *Conversation) CheckJoin(user int64, l Limits) (int64, error) {
	if !c.Exists() {
		return 0, ErrConversationNotFound
	}
	if id, ok := c.members[user]; ok {
		return id, nil
	}
	// A direct chat is the history of two people: after one leaves, only
	// they may come back, never a stranger.
	if c.Type == Direct && len(c.parties) >= 2 && !slices.Contains(c.parties, user) {
		return 0, ErrNotParty
	}
	if len(c.members) >= l.capacity(c.Type) {
		return 0, ErrRoomFull
	}
	return 0, nil
}

// Join decides the event of a new membership; call CheckJoin first.
func (c *Conversation) Join(user, membershipID int64) []Event {
	return []Event{MemberJoined{ConversationID: c.ID, UserID: user, MembershipID: membershipID}}
}

// Leave decides the event of user leaving, and the promotion that keeps
// the room with an admin (see withSuccession).
func (c *Conversation) Leave(user int64) ([]Event, error) {
	if !c.Exists() {
		return nil, ErrConversationNotFound
	}
	id, ok := c.members[user]
	if !ok {
		return nil, ErrNotMemberToLeave
	}
	return c.withSuccession(MemberLeft{ConversationID: c.ID, UserID: user, MembershipID: id}), nil
}

// CheckMember returns an error unless user may read or write the conversation.
func (c *Conversation) CheckMember(user int64) error {
	if !c.Exists() {
		return ErrConversationNotFound
	}
	if _, ok := c.members[user]; !ok {
		return ErrNotMember
	}
	return nil
}

// MessageContent is what a sender supplies.
type MessageContent struct {
	Text    string
	Picture *Attachment
	Video   *Attachment
	// ReplyTo is the message of the room this one answers (0: none); the
	// caller checks that it is one (the rules know no message but the last).
	ReplyTo int64
}

// CheckSend validates a send before a message id is taken.
func (c *Conversation) CheckSend(sender int64, m MessageContent, l Limits) error {
	if err := c.CheckMember(sender); err != nil {
		return err
	}
	if err := l.CheckText(m.Text); err != nil {
		return err
	}
	if m.Text == "" && m.Picture == nil && m.Video == nil {
		return ErrEmptyMessage
	}
	return nil
}

// Send decides the message event; call CheckSend first. Receivers are the
// other members now.
func (c *Conversation) Send(sender, messageID int64, m MessageContent) []Event {
	receivers := make([]int64, 0, len(c.members))
	for u := range c.members {
		if u != sender {
			receivers = append(receivers, u)
		}
	}
	slices.Sort(receivers) // as Members: in ascending order
	return []Event{MessageSent{
		ConversationID: c.ID, MessageID: messageID, SenderID: sender, Receivers: receivers,
		Text: m.Text, Picture: m.Picture, Video: m.Video, ReplyTo: m.ReplyTo,
	}}
}
