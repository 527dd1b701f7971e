package commands

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/evchat/evchat/domain"
)

// Invite is a new invite's token (shown once: the log keeps its hash only)
// and expiry.
type Invite struct {
	Written
	Token     string
	ExpiresAt time.Time
}

// inviteHash is what the log keeps of an invite token. The token has 256
// random bits, so a plain SHA-256 is enough: there is nothing to guess.
func inviteHash(token string) string {
	if token == "" {
		return ""
	}
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// CreateInvite makes an invite to a conversation, by one of its members;
// it admits whoever holds its token until InviteTTL has passed. Errors:
// ErrConversationNotFound, ErrNotMember.
func (s *Service) CreateInvite(ctx context.Context, a Actor, conversationID int64) (Invite, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Invite{}, fmt.Errorf("create invite: %w", err)
	}
	out := Invite{Token: base64.RawURLEncoding.EncodeToString(raw[:])}
	out.ExpiresAt = s.now().UTC().Add(s.inviteTTL).Truncate(time.Microsecond)
	w, _, err := s.updateConversation(ctx, a, conversationID, nil, func(c *domain.Conversation) ([]domain.Event, error) {
		return c.CreateInvite(a.UserID, inviteHash(out.Token), out.ExpiresAt)
	})
	if err != nil {
		return Invite{}, err
	}
	out.Written = w
	return out, nil
}
