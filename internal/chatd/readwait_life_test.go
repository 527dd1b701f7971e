package chatd_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestWritesAfterEarlyAnswer: the writes that decide on projected state
// (an edit of, a reaction to, a reply to and a delete of the caller's own
// message) see the caller's send that answered before the read model
// showed it, instead of answering 404 or 400 for a message they cannot see
// yet. (A reply does not wait: it reads the room's stream past the
// projection itself.) The projector is
// held until the write reports that it waits; a write that does not wait
// answers while the projector is held and fails the test.
func TestWritesAfterEarlyAnswer(t *testing.T) {
	t.Parallel()
	var hold projectorHold
	waits := make(readWaiters, 16)
	cfg := serverConfig(t)
	cfg.ProjectionWait = time.Hour // a write that gave up waiting would pass only by chance
	cfg.ReadWaiting = waits.hook
	cfg.Hooks.ProjectorBeforeCommit = hold.hook
	s := startWith(t, cfg)
	alice, bob := s.newUser(), s.newUser()
	room := s.room(alice, bob)

	for _, tc := range []struct {
		name   string
		method string
		path   func(sent int64) string
		body   func(sent int64) any
		want   int
	}{
		{"edit", "PATCH", func(id int64) string { return fmt.Sprintf("/messages/%d/", id) },
			func(int64) any { return map[string]string{"text": "edited at once"} }, http.StatusOK},
		{"reaction", "PUT", func(id int64) string { return fmt.Sprintf("/messages/%d/reactions/%s/", id, "%F0%9F%91%8D") },
			func(int64) any { return nil }, http.StatusOK},
		{"reply", "POST", func(int64) string { return "/send-message/" },
			func(id int64) any { return map[string]any{"conversation_id": room, "text": "re", "reply_to": id} }, http.StatusCreated},
		{"delete", "DELETE", func(id int64) string { return fmt.Sprintf("/messages/%d/", id) },
			func(int64) any { return nil }, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			letGo := hold.hold()
			defer letGo()
			r := s.callJSON(t, "POST", "/send-message/", alice.Access, map[string]any{"conversation_id": room, "text": tc.name})
			wantStatus(t, r, http.StatusCreated)
			var sent messageJSON
			r.JSON(t, &sent)
			done := make(chan response, 1)
			go func() {
				r, err := s.tryJSON(tc.method, tc.path(sent.ID), alice.Access, tc.body(sent.ID))
				if err != nil {
					t.Error(err)
				}
				done <- r
			}()
			select {
			case u := <-waits:
				if u != alice.ID {
					t.Fatalf("user %d's request waited; want alice's (%d)", u, alice.ID)
				}
				letGo()
				r = <-done
			case r = <-done: // answered while the projector was held
			}
			wantStatus(t, r, tc.want)
		})
	}
}
