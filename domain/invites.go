package domain

import "time"

// Errors of invite-only groups.
var (
	ErrInviteRequired = Errorf(KindForbidden, "This group is invite-only: a valid invite is required to join")
	ErrInviteNotGroup = FieldError("invite_only", "Only a group can be invite-only.")
)

// InviteCreated records an invite to an invite-only group: the SHA-256 of
// the token (hex), never the token, so that the log does not hand out
// entries. An invite admits anyone who holds the token until it expires.
type InviteCreated struct {
	ConversationID int64     `json:"conversation_id"`
	TokenHash      string    `json:"token_hash"`
	CreatedBy      int64     `json:"created_by"`
	ExpiresAt      time.Time `json:"expires_at"`
}

func (InviteCreated) EventType() string { return TypeInviteCreated }

// InviteOnly reports whether joining needs an invite.
func (c *Conversation) InviteOnly() bool { return c.inviteOnly }

// CreateInvite decides the event of an invite by user, a member: any
// member may invite (the room has no roles).
func (c *Conversation) CreateInvite(user int64, tokenHash string, expires time.Time) ([]Event, error) {
	if err := c.CheckMember(user); err != nil {
		return nil, err
	}
	return []Event{InviteCreated{ConversationID: c.ID, TokenHash: tokenHash, CreatedBy: user, ExpiresAt: expires}}, nil
}

// CheckInvite tells whether the invite of tokenHash admits a new member at
// now: it must exist and not have expired. Open rooms need none.
func (c *Conversation) CheckInvite(tokenHash string, now time.Time) error {
	if !c.inviteOnly {
		return nil
	}
	exp, ok := c.invites[tokenHash]
	if tokenHash == "" || !ok || !now.Before(exp) {
		return ErrInviteRequired
	}
	return nil
}
