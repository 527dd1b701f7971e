package chatd_test

// Group administration (API.md section 8): admins rename groups, add,
// remove and promote members; the longest-standing member takes over from
// the last admin; every change is a frame, in the audit stream, and
// resumable.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/internal/chatd"
)

// roomFrame is a frame with the fields of this file's frames.
type roomFrame struct {
	Type     string  `json:"type"`
	User     int64   `json:"user"`
	By       *int64  `json:"by"`
	Name     *string `json:"name"`
	Admins   []int64 `json:"admins"`
	Members  []int64 `json:"members"`
	Position string  `json:"position"`
}

// expectRoomFrame reads the next frame, checks its type and decodes it.
func (c *wsConn) expectRoomFrame(t testing.TB, typ string) roomFrame {
	t.Helper()
	f := c.expect(t, typ)
	var rf roomFrame
	if err := json.Unmarshal(f.Raw, &rf); err != nil {
		t.Fatalf("frame %s: %v", f.Raw, err)
	}
	return rf
}

// chatroom returns the room as u's list-chatrooms shows it.
func (s *testServer) chatroom(t testing.TB, u user, room int64) chatroomJSON {
	t.Helper()
	for _, c := range s.chatrooms(t, u) {
		if c.ID == room {
			return c
		}
	}
	t.Fatalf("room %d is not among user %d's chatrooms", room, u.ID)
	return chatroomJSON{}
}

func TestRoomAdministration(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *chatd.Config) { c.MaxGroup = 4 })
	alice, bob, carol, dave, eve := s.newUser(), s.newUser(), s.newUser(), s.newUser(), s.newUser()
	room := s.room(alice, bob, carol)
	path := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
	bobWS, carolWS := s.wsConnect(bob, room, ""), s.wsConnect(carol, room, "")

	t.Run("creator is the first admin", func(t *testing.T) {
		c := s.chatroom(t, bob, room)
		if !slices.Equal(c.Admins, []int64{alice.ID}) {
			t.Fatalf("admins = %v; want [%d]", c.Admins, alice.ID)
		}
	})

	t.Run("rename", func(t *testing.T) {
		s := s.with(t)
		r := s.do("PATCH", path("/chatrooms/%d/", room), alice.Access, map[string]any{"name": "renamed", "description": "about"})
		wantStatus(t, r, http.StatusOK)
		c := decodeChatroom(t, r.Body)
		if c.Name == nil || *c.Name != "renamed" || c.Description == nil || *c.Description != "about" || !slices.Equal(c.Admins, []int64{alice.ID}) {
			t.Fatalf("PATCH answered %s; want the renamed room", r.Body)
		}
		for _, so := range []*wsConn{bobWS, carolWS} {
			f := so.expect(t, "chatroom_updated")
			wantObject(t, f.Raw, append([]string{"type", "position"}, chatroomKeys...))
			if c := decodeChatroom(t, f.Raw, "type", "position"); c.Name == nil || *c.Name != "renamed" {
				t.Fatalf("chatroom_updated = %s; want the new name", f.Raw)
			}
		}
		// Only the description: the name stays.
		r = s.do("PATCH", path("/chatrooms/%d/", room), alice.Access, map[string]any{"description": "again"})
		if c := decodeChatroom(t, r.Body); c.Name == nil || *c.Name != "renamed" || *c.Description != "again" {
			t.Fatalf("PATCH description answered %s", r.Body)
		}
		bobWS.expect(t, "chatroom_updated")
		carolWS.expect(t, "chatroom_updated")
	})

	t.Run("rename refused", func(t *testing.T) {
		s := s.with(t)
		direct := s.do("POST", "/create-chatroom/", alice.Access, map[string]any{"members": []int64{dave.ID}})
		wantStatus(t, direct, http.StatusCreated)
		var d struct{ ID int64 }
		direct.JSON(t, &d)
		wantDetail(t, s.do("PATCH", path("/chatrooms/%d/", room), bob.Access, map[string]any{"name": "x"}), http.StatusForbidden, domain.ErrNotAdmin.Message)
		wantDetail(t, s.do("PATCH", path("/chatrooms/%d/", room), dave.Access, map[string]any{"name": "x"}), http.StatusForbidden, domain.ErrNotMember.Message)
		wantDetail(t, s.do("PATCH", "/chatrooms/999999/", alice.Access, map[string]any{"name": "x"}), http.StatusNotFound, "")
		wantFields(t, s.do("PATCH", path("/chatrooms/%d/", room), alice.Access, map[string]any{"name": strings.Repeat("n", 256)}), map[string][]string{"name": nil})
		wantFields(t, s.do("PATCH", path("/chatrooms/%d/", room), alice.Access, map[string]any{"name": nil}), map[string][]string{"name": nil})
		wantFields(t, s.do("PATCH", path("/chatrooms/%d/", room), alice.Access, map[string]any{"description": "a\x00b"}), map[string][]string{"description": nil})
		wantFields(t, s.do("PATCH", path("/chatrooms/%d/", room), alice.Access, map[string]any{"name": 7}), map[string][]string{"name": nil})
		wantDetail(t, s.do("PATCH", path("/chatrooms/%d/", d.ID), alice.Access, map[string]any{"name": "x"}), http.StatusBadRequest, domain.ErrDirectNotEditable.Message)
	})

	var daveMembership int64
	t.Run("add member", func(t *testing.T) {
		s := s.with(t)
		r := s.do("POST", path("/chatrooms/%d/members/", room), alice.Access, map[string]any{"user": dave.ID})
		wantStatus(t, r, http.StatusCreated)
		var m struct{ ID, Conversation, User int64 }
		r.JSON(t, &m)
		wantObject(t, r.Body, []string{"id", "conversation", "user"})
		if m.Conversation != room || m.User != dave.ID || m.ID == 0 {
			t.Fatalf("add answered %s", r.Body)
		}
		daveMembership = m.ID
		for _, so := range []*wsConn{bobWS, carolWS} {
			f := so.expectRoomFrame(t, "member_joined")
			if f.User != dave.ID || f.By == nil || *f.By != alice.ID {
				t.Fatalf("member_joined = %+v; want dave added by alice", f)
			}
		}
		if c := s.chatroom(t, dave, room); !slices.Contains(c.Members, dave.ID) {
			t.Fatalf("members = %v; want dave among them", c.Members)
		}
		// Already a member: the same membership, 200.
		r = s.do("POST", path("/chatrooms/%d/members/", room), alice.Access, map[string]any{"user": dave.ID})
		wantStatus(t, r, http.StatusOK)
		var again struct{ ID int64 }
		r.JSON(t, &again)
		if again.ID != daveMembership {
			t.Fatalf("second add: membership %d; want %d", again.ID, daveMembership)
		}
	})

	t.Run("add refused", func(t *testing.T) {
		s := s.with(t)
		p := path("/chatrooms/%d/members/", room)
		wantDetail(t, s.do("POST", p, bob.Access, map[string]any{"user": eve.ID}), http.StatusForbidden, domain.ErrNotAdmin.Message)
		wantDetail(t, s.do("POST", p, eve.Access, map[string]any{"user": eve.ID}), http.StatusForbidden, domain.ErrNotMember.Message)
		wantDetail(t, s.do("POST", "/chatrooms/999999/members/", alice.Access, map[string]any{"user": eve.ID}), http.StatusNotFound, "")
		wantFields(t, s.do("POST", p, alice.Access, map[string]any{}), map[string][]string{"user": {"This field is required."}})
		wantFields(t, s.do("POST", p, alice.Access, map[string]any{"user": "x"}), map[string][]string{"user": nil})
		// The room has 4 members, the cap.
		wantDetail(t, s.do("POST", p, alice.Access, map[string]any{"user": eve.ID}), http.StatusBadRequest, domain.ErrRoomFull.Message)
		// A direct chat admits only its two parties.
		direct := s.do("POST", "/create-chatroom/", eve.Access, map[string]any{"members": []int64{carol.ID}})
		var d struct{ ID int64 }
		direct.JSON(t, &d)
		wantDetail(t, s.do("POST", path("/chatrooms/%d/members/", d.ID), eve.Access, map[string]any{"user": dave.ID}), http.StatusForbidden, domain.ErrNotParty.Message)
	})

	t.Run("unknown user", func(t *testing.T) {
		s := s.with(t)
		small := s.room(alice, bob)
		wantFields(t, s.do("POST", path("/chatrooms/%d/members/", small), alice.Access, map[string]any{"user": 999999}),
			map[string][]string{"user": {`Invalid pk "999999" - object does not exist.`}})
	})

	t.Run("promote", func(t *testing.T) {
		s := s.with(t)
		p := path("/chatrooms/%d/admins/", room)
		r := s.do("POST", p, alice.Access, map[string]any{"user": bob.ID})
		wantStatus(t, r, http.StatusOK)
		if c := decodeChatroom(t, r.Body); !slices.Equal(c.Admins, []int64{alice.ID, bob.ID}) {
			t.Fatalf("promote answered %s; want admins alice and bob", r.Body)
		}
		for _, so := range []*wsConn{bobWS, carolWS} {
			if f := so.expectRoomFrame(t, "chatroom_updated"); !slices.Equal(f.Admins, []int64{alice.ID, bob.ID}) {
				t.Fatalf("chatroom_updated = %+v; want admins alice and bob", f)
			}
		}
		// Promoting an admin changes nothing.
		wantStatus(t, s.do("POST", p, bob.Access, map[string]any{"user": alice.ID}), http.StatusOK)
		wantDetail(t, s.do("POST", p, carol.Access, map[string]any{"user": carol.ID}), http.StatusForbidden, domain.ErrNotAdmin.Message)
		wantDetail(t, s.do("POST", p, eve.Access, map[string]any{"user": eve.ID}), http.StatusForbidden, domain.ErrNotMember.Message)
		wantDetail(t, s.do("POST", "/chatrooms/999999/admins/", alice.Access, map[string]any{"user": bob.ID}), http.StatusNotFound, "")
		wantFields(t, s.do("POST", p, alice.Access, map[string]any{"user": eve.ID}), map[string][]string{"user": {"User is not a member of the conversation."}})
	})

	t.Run("remove", func(t *testing.T) {
		s := s.with(t)
		r := s.do("DELETE", path("/chatrooms/%d/members/%d/", room, carol.ID), bob.Access, nil)
		wantStatus(t, r, http.StatusOK)
		if r.text() != `{"message":"Member removed"}` {
			t.Fatalf("remove answered %s", r.Body)
		}
		for _, so := range []*wsConn{bobWS, carolWS} {
			f := so.expectRoomFrame(t, "member_left")
			if f.User != carol.ID || f.By == nil || *f.By != bob.ID {
				t.Fatalf("member_left = %+v; want carol removed by bob", f)
			}
		}
		carolWS.expectClose(t, websocket.CloseNormalClosure)
		if _, status, _ := s.wsDial(nil, room, "token="+carol.Access, nil); status != http.StatusForbidden {
			t.Fatalf("removed member's socket: status %d; want 403", status)
		}
		wantDetail(t, s.do("DELETE", path("/chatrooms/%d/members/%d/", room, carol.ID), bob.Access, nil), http.StatusBadRequest, domain.ErrNotMemberToLeave.Message)
		wantDetail(t, s.do("DELETE", path("/chatrooms/%d/members/%d/", room, bob.ID), carol.Access, nil), http.StatusForbidden, domain.ErrNotMember.Message)
		wantDetail(t, s.do("DELETE", path("/chatrooms/%d/members/%d/", room, bob.ID), dave.Access, nil), http.StatusForbidden, domain.ErrNotAdmin.Message)
		wantDetail(t, s.do("DELETE", path("/chatrooms/999999/members/%d/", bob.ID), bob.Access, nil), http.StatusNotFound, "")
	})

	t.Run("audit and resume", func(t *testing.T) {
		s := s.with(t)
		r := s.do("GET", path("/audit/conversations/%d/", room), bob.Access, nil)
		wantStatus(t, r, http.StatusOK)
		var events []struct {
			Type string
			Data map[string]any
		}
		r.JSON(t, &events)
		var types []string
		for _, e := range events {
			types = append(types, e.Type)
			if e.Type == domain.TypeMemberJoined && e.Data["user_id"] == float64(dave.ID) && e.Data["by"] != float64(alice.ID) {
				t.Fatalf("audit member_joined = %v; want by alice", e.Data)
			}
		}
		for _, want := range []string{domain.TypeConversationUpdated, domain.TypeAdminPromoted, domain.TypeMemberJoined, domain.TypeMemberLeft} {
			if !slices.Contains(types, want) {
				t.Fatalf("audit types %v; want %s among them", types, want)
			}
		}
		// A socket resuming from the room's start hears the same frames.
		so := s.wsConnect(bob, room, "since=0")
		want := []string{"chatroom_updated", "chatroom_updated", "member_joined", "chatroom_updated", "member_left"}
		var got []string
		for range want {
			got = append(got, so.next(t).Type)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("resumed frames %v; want %v", got, want)
		}
	})
}

// TestLastAdminSuccession: when the last admin leaves or is removed, the
// member with the lowest membership id becomes admin in the same append.
func TestLastAdminSuccession(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	alice, bob, carol, dave := s.newUser(), s.newUser(), s.newUser(), s.newUser()
	room := s.room(alice, carol, bob) // memberships in this order: alice, carol, bob
	wantStatus(t, s.do("POST", "/join-chatroom/", dave.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
	watch := s.wsConnect(dave, room, "")

	wantStatus(t, s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), alice.Access, nil), http.StatusOK)
	if f := watch.expectRoomFrame(t, "member_left"); f.User != alice.ID || f.By != nil {
		t.Fatalf("member_left = %+v; want alice leaving, no by", f)
	}
	if f := watch.expectRoomFrame(t, "chatroom_updated"); !slices.Equal(f.Admins, []int64{carol.ID}) {
		t.Fatalf("chatroom_updated = %+v; want carol (the longest-standing member) admin", f)
	}
	if c := s.chatroom(t, dave, room); !slices.Equal(c.Admins, []int64{carol.ID}) {
		t.Fatalf("admins = %v; want [carol]", c.Admins)
	}
	// The promotion is in the same append as the leave, by nobody.
	r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/", room), dave.Access, nil)
	var events []struct {
		Type     string
		Position string
		Data     map[string]any
	}
	r.JSON(t, &events)
	n := len(events)
	if n < 2 || events[n-2].Type != domain.TypeMemberLeft || events[n-1].Type != domain.TypeAdminPromoted || events[n-1].Data["by"] != nil {
		t.Fatalf("audit ends with %+v; want member_left then admin_promoted without by", events[max(0, n-2):])
	}

	// An admin removing themself leaves, and the next takes over.
	wantStatus(t, s.do("DELETE", fmt.Sprintf("/chatrooms/%d/members/%d/", room, carol.ID), carol.Access, nil), http.StatusOK)
	watch.expectRoomFrame(t, "member_left")
	if f := watch.expectRoomFrame(t, "chatroom_updated"); !slices.Equal(f.Admins, []int64{bob.ID}) {
		t.Fatalf("chatroom_updated = %+v; want bob admin", f)
	}
}
