package chatd_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestDirectChatClosedToStrangers: after one party leaves a direct chat,
// a stranger cannot join it (403) nor read its history; the party who left
// may come back.
func TestDirectChatClosedToStrangers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, mallory := s.newUser(), s.newUser(), s.newUser()
	r := s.callJSON(t, "POST", "/create-chatroom/", a.Access, map[string]any{"type": "chat", "members": []int64{b.ID}})
	wantStatus(t, r, http.StatusCreated)
	var room struct{ ID int64 }
	r.JSON(t, &room)
	s.send(a, room.ID, "just between us")
	wantStatus(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room.ID), b.Access, nil), http.StatusOK)

	// The attack: join the half-empty direct chat and read it.
	wantDetail(t, s.callJSON(t, "POST", "/join-chatroom/", mallory.Access, map[string]any{"chatroom_id": room.ID}),
		http.StatusForbidden, "Only its two participants may join a direct chat")
	wantStatus(t, s.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/", room.ID), mallory.Access, nil), http.StatusForbidden)

	wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", b.Access, map[string]any{"chatroom_id": room.ID}), http.StatusCreated)
	wantStatus(t, s.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/", room.ID), b.Access, nil), http.StatusOK)

	// A direct chat created alone gets its second party at the first join.
	r = s.callJSON(t, "POST", "/create-chatroom/", a.Access, nil)
	wantStatus(t, r, http.StatusCreated)
	r.JSON(t, &room)
	wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", b.Access, map[string]any{"chatroom_id": room.ID}), http.StatusCreated)
	wantStatus(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room.ID), b.Access, nil), http.StatusOK)
	wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", mallory.Access, map[string]any{"chatroom_id": room.ID}), http.StatusForbidden)

	// Groups stay open.
	group := s.room(a)
	wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", mallory.Access, map[string]any{"chatroom_id": group}), http.StatusCreated)
}

// TestOneDirectChatPerPair creates the direct chat of two users from both
// sides at once, many times: one room is created (201), every other
// request answers with it (200), and a later request too.
func TestOneDirectChatPerPair(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	const n = 8
	type answer struct {
		status int
		id     int64
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			r, err := s.tryJSON("POST", "/create-chatroom/", from.Access, map[string]any{"members": []int64{to.ID}})
			if err != nil {
				t.Error(err)
				return
			}
			var room struct{ ID int64 }
			if r.Status == http.StatusCreated || r.Status == http.StatusOK {
				r.JSON(t, &room)
			}
			answers[i] = answer{r.Status, room.ID}
		}()
	}
	wg.Wait()
	created := 0
	for _, ans := range answers {
		switch ans.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("create = %d; want 201 or 200", ans.status)
		}
		if ans.id != answers[0].id {
			t.Fatalf("answers name rooms %v; want one room", answers)
		}
	}
	if created != 1 {
		t.Fatalf("%d rooms created; want 1 (%v)", created, answers)
	}
	r := s.callJSON(t, "POST", "/create-chatroom/", b.Access, map[string]any{"type": "chat", "members": []int64{a.ID}})
	wantStatus(t, r, http.StatusOK)
	var again struct {
		ID      int64
		Members []int64
	}
	r.JSON(t, &again)
	if again.ID != answers[0].id || len(again.Members) != 2 {
		t.Errorf("create again = %s; want room %d with both members", r.Body, answers[0].id)
	}
	if rooms := s.chatrooms(t, a); len(rooms) != 1 {
		t.Errorf("a lists %d rooms; want 1", len(rooms))
	}
	// Groups of the same two are not direct chats: each is new.
	wantStatus(t, s.callJSON(t, "POST", "/create-chatroom/", a.Access, map[string]any{"type": "group", "members": []int64{b.ID}}), http.StatusCreated)
}
