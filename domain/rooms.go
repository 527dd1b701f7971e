package domain

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Group administration: admins rename a group, add and remove members and
// promote members to admins. A room always has an admin while it has
// members: when the last one leaves or is removed, the longest-standing
// member (the lowest membership id) is promoted in the same append.

// Errors of group administration; compare with errors.Is.
var (
	ErrNotAdmin = Errorf(KindForbidden, "Only an admin of this conversation may do that")
	// ErrDirectNotEditable: a direct chat has no name or description to
	// change.
	ErrDirectNotEditable = Errorf(KindInvalid, "A direct chat cannot be renamed")
	// ErrNotAMember is the field error of a promotion of someone who is
	// not a member.
	ErrNotAMember = FieldError("user", "User is not a member of the conversation.")
)

// checkAdmin returns an error unless by may administer the conversation:
// ErrConversationNotFound, ErrNotMember, ErrNotAdmin.
func (c *Conversation) checkAdmin(by int64) error {
	if err := c.CheckMember(by); err != nil {
		return err
	}
	if !c.admins[by] {
		return ErrNotAdmin
	}
	return nil
}

// CheckDetails validates a new name and description as a creation does;
// a nil pointer is a field left unchanged.
func CheckDetails(name, description *string, l Limits) error {
	fields := map[string][]string{}
	if name != nil && utf8.RuneCountInString(*name) > l.MaxNameRunes {
		fields["name"] = []string{fmt.Sprintf("Ensure this field has no more than %d characters.", l.MaxNameRunes)}
	} else if name != nil && strings.ContainsRune(*name, 0) {
		fields["name"] = []string{NullCharactersMessage}
	}
	if description != nil && utf8.RuneCountInString(*description) > l.MaxDescription {
		fields["description"] = []string{fmt.Sprintf("Ensure this field has no more than %d characters.", l.MaxDescription)}
	} else if description != nil && strings.ContainsRune(*description, 0) {
		fields["description"] = []string{NullCharactersMessage}
	}
	if len(fields) > 0 {
		return &Error{Kind: KindInvalid, Fields: fields}
	}
	return nil
}

// Update decides a rename or new description of a group by an admin. A
// field equal to the current value counts as unchanged; nothing changed is
// no event and no error.
func (c *Conversation) Update(by int64, name, description *string, l Limits) ([]Event, error) {
	if err := c.checkAdmin(by); err != nil {
		return nil, err
	}
	if c.Type == Direct {
		return nil, ErrDirectNotEditable
	}
	if err := CheckDetails(name, description, l); err != nil {
		return nil, err
	}
	same := func(a, b *string) bool { return b == nil || (a != nil && *a == *b) }
	if same(c.Name, name) {
		name = nil
	}
	if same(c.Description, description) {
		description = nil
	}
	if name == nil && description == nil {
		return nil, nil
	}
	return []Event{ConversationUpdated{ConversationID: c.ID, UpdatedBy: by, Name: name, Description: description}}, nil
}

// CheckAdd tells whether admin by may add user: it returns user's existing
// membership id (already a member: nothing to do), or an error (those of
// checkAdmin, then ErrNotParty and ErrRoomFull as for a join). An invite is
// not needed: the admin is the one who admits.
func (c *Conversation) CheckAdd(by, user int64, l Limits) (int64, error) {
	if err := c.checkAdmin(by); err != nil {
		return 0, err
	}
	return c.CheckJoin(user, l)
}

// Add decides the event of admin by adding user; call CheckAdd first.
func (c *Conversation) Add(by, user, membershipID int64) []Event {
	return []Event{MemberJoined{ConversationID: c.ID, UserID: user, MembershipID: membershipID, By: by}}
}

// Remove decides the removal of user by admin by, and the promotion that
// keeps the room with an admin. An admin removing themself leaves.
// Errors: those of checkAdmin, ErrNotMemberToLeave.
func (c *Conversation) Remove(by, user int64) ([]Event, error) {
	if err := c.checkAdmin(by); err != nil {
		return nil, err
	}
	if by == user {
		return c.Leave(user)
	}
	id, ok := c.members[user]
	if !ok {
		return nil, ErrNotMemberToLeave
	}
	return c.withSuccession(MemberLeft{ConversationID: c.ID, UserID: user, MembershipID: id, By: by}), nil
}

// Promote decides making user an admin, by admin by. Promoting an admin is
// no event. Errors: those of checkAdmin, ErrNotAMember.
func (c *Conversation) Promote(by, user int64) ([]Event, error) {
	if err := c.checkAdmin(by); err != nil {
		return nil, err
	}
	if _, ok := c.members[user]; !ok {
		return nil, ErrNotAMember
	}
	if c.admins[user] {
		return nil, nil
	}
	return []Event{AdminPromoted{ConversationID: c.ID, UserID: user, By: by}}, nil
}

// withSuccession returns left, followed by the automatic promotion of the
// longest-standing remaining member (By 0) when no admin remains after it
// and members do: the last admin left, or the room had none (its creator
// left before rooms had admins).
func (c *Conversation) withSuccession(left MemberLeft) []Event {
	out := []Event{left}
	for a := range c.admins {
		if a != left.UserID {
			return out
		}
	}
	var next, nextMembership int64
	for u, m := range c.members {
		if u != left.UserID && (next == 0 || m < nextMembership) {
			next, nextMembership = u, m
		}
	}
	if next != 0 {
		out = append(out, AdminPromoted{ConversationID: c.ID, UserID: next})
	}
	return out
}
