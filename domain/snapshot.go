package domain

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// ConversationSnapshotVersion is the shape of ConversationSnapshot. Raise it
// whenever the snapshot's fields or the way events fold into a Conversation
// change: snapshots of another version are ignored and the stream is read
// from its start.
const ConversationSnapshotVersion = 4

// ConversationSnapshot is a Conversation in a form that can be stored, so
// that loading a long conversation stream after a restart reads only the
// events after the snapshot.
type ConversationSnapshot struct {
	ID            int64            `json:"id"`
	Type          ConversationType `json:"type"`
	Name          *string          `json:"name,omitempty"`
	Description   *string          `json:"description,omitempty"`
	CreatedBy     int64            `json:"created_by"`
	LastMessageID int64            `json:"last_message_id"`
	// Members are [user id, membership id] pairs, ordered by user id so that
	// one state always has one encoding.
	Members [][2]int64 `json:"members"`
	// Parties are a direct chat's two people (version 2).
	Parties []int64 `json:"parties,omitempty"`
	// InviteOnly and Invites (token hash → expiry) since version 3.
	InviteOnly bool                 `json:"invite_only,omitempty"`
	Invites    map[string]time.Time `json:"invites,omitempty"`
	// Admins since version 4, ascending.
	Admins []int64 `json:"admins,omitempty"`
}

// Snapshot returns the conversation's state as a snapshot.
func (c *Conversation) Snapshot() ConversationSnapshot {
	s := ConversationSnapshot{
		ID: c.ID, Type: c.Type, Name: c.Name, Description: c.Description,
		CreatedBy: c.CreatedBy, LastMessageID: c.LastMessageID,
		Members: make([][2]int64, 0, len(c.members)), Parties: slices.Clone(c.parties),
		InviteOnly: c.inviteOnly, Invites: maps.Clone(c.invites), Admins: c.Admins(),
	}
	for u, m := range c.members {
		s.Members = append(s.Members, [2]int64{u, m})
	}
	slices.SortFunc(s.Members, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	return s
}

// Restore returns the conversation a snapshot was taken of.
func (s ConversationSnapshot) Restore() *Conversation {
	c := &Conversation{
		ID: s.ID, Type: s.Type, Name: s.Name, Description: s.Description,
		CreatedBy: s.CreatedBy, LastMessageID: s.LastMessageID,
		members: make(map[int64]int64, len(s.Members)), parties: slices.Clone(s.Parties),
		inviteOnly: s.InviteOnly, invites: maps.Clone(s.Invites),
		admins: make(map[int64]bool, len(s.Admins)),
	}
	for _, m := range s.Members {
		c.members[m[0]] = m[1]
	}
	for _, u := range s.Admins {
		c.admins[u] = true
	}
	return c
}
