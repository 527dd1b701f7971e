package chatd_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
)

// TestInviteOnlyGroups: a stranger cannot join an invite-only group
// without an invite (403), with a made-up one, or with an expired one; a
// member's invite admits them; the log keeps only the token's hash; open
// groups are joined as before.
func TestInviteOnlyGroups(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	s := startServer(t, func(c *chatd.Config) { c.Hooks.Now = clk.Now; c.InviteTTL = time.Hour })
	owner, member, stranger, late := s.newUser(), s.newUser(), s.newUser(), s.newUser()
	r := s.callJSON(t, "POST", "/create-chatroom/", owner.Access, map[string]any{"type": "group", "invite_only": true, "members": []int64{member.ID}})
	wantStatus(t, r, http.StatusCreated)
	var room struct{ ID int64 }
	r.JSON(t, &room)
	join := func(u user, body map[string]any) response {
		t.Helper()
		body["chatroom_id"] = room.ID
		return s.callJSON(t, "POST", "/join-chatroom/", u.Access, body)
	}

	// The attack: join without an invite, or with a guess.
	wantDetail(t, join(stranger, map[string]any{}), http.StatusForbidden, "This group is invite-only: a valid invite is required to join")
	wantStatus(t, join(stranger, map[string]any{"invite": "guess"}), http.StatusForbidden)
	wantStatus(t, s.callJSON(t, "POST", fmt.Sprintf("/chatrooms/%d/invites/", room.ID), stranger.Access, nil), http.StatusForbidden)
	wantStatus(t, s.callJSON(t, "POST", "/chatrooms/999999/invites/", member.Access, nil), http.StatusNotFound)

	r = s.callJSON(t, "POST", fmt.Sprintf("/chatrooms/%d/invites/", room.ID), member.Access, nil)
	wantStatus(t, r, http.StatusCreated)
	var inv struct {
		Token     string
		ExpiresAt string `json:"expires_at"`
	}
	r.JSON(t, &inv)
	exp, err := time.Parse(time.RFC3339Nano, inv.ExpiresAt)
	if err != nil || len(inv.Token) < 43 || exp.Sub(clk.Now().Truncate(time.Microsecond)) != time.Hour {
		t.Fatalf("invite = %s (%v); want a long token expiring in an hour", r.Body, err)
	}
	wantStatus(t, join(stranger, map[string]any{"invite": inv.Token}), http.StatusCreated)
	wantStatus(t, join(stranger, map[string]any{}), http.StatusOK) // a member already

	for _, e := range wholeLog(t, s) {
		if strings.Contains(string(e.Data), inv.Token) || strings.Contains(string(e.Metadata), inv.Token) {
			t.Errorf("event %s (%s) holds the invite token", e.ID, e.Type)
		}
	}

	clk.Advance(time.Hour)
	wantStatus(t, join(late, map[string]any{"invite": inv.Token}), http.StatusForbidden)

	// "chat" cannot be invite-only; open groups need no invite.
	wantFields(t, s.callJSON(t, "POST", "/create-chatroom/", owner.Access, map[string]any{"invite_only": true}),
		map[string][]string{"invite_only": {"Only a group can be invite-only."}})
	open := s.room(owner)
	wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", late.Access, map[string]any{"chatroom_id": open}), http.StatusCreated)
}
