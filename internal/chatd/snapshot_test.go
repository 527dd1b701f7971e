package chatd_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/internal/chatd"
)

// TestSnapshotsSurviveARestart: a busy room is snapshotted as it grows, and a
// restarted server decides on the snapshot plus the events after it, with
// the same answers as before.
func TestSnapshotsSurviveARestart(t *testing.T) {
	t.Parallel()
	var cfg chatd.Config
	s := startServer(t, func(c *chatd.Config) { c.SnapshotEvery = 10 }, capture(&cfg))
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b, c)
	if r := s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), c.Access, nil); r.Status != http.StatusOK {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	var last int64
	for i := range 25 {
		last = s.send([]user{a, b}[i%2], room, fmt.Sprintf("m%d", i))
	}
	// Revisions: 0 created, 1 left, 2..26 messages. Snapshots are taken as
	// the stream passes 10 and 20 events.
	var rev int64
	var state map[string]any
	conn, err := pgx.Connect(t.Context(), cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	err = conn.QueryRow(t.Context(), `SELECT revision, state FROM snapshots WHERE stream_id = $1`, domain.ConversationStream(room)).Scan(&rev, &state)
	if err != nil {
		t.Fatalf("no snapshot of the room: %v", err)
	}
	if rev != 19 || state["last_message_id"] == nil {
		t.Fatalf("snapshot at revision %d with state %v; want revision 19", rev, state)
	}
	s.stop()

	s2 := startWith(t, cfg)
	a, b, c = s2.login(a), s2.login(b), s2.login(c)
	if id := s2.send(b, room, "after the restart"); id <= last {
		t.Errorf("message id %d after the restart; want past %d", id, last)
	}
	if r := s2.do("POST", "/send-message/", c.Access, map[string]any{"conversation_id": room, "text": "I left"}); r.Status != http.StatusForbidden {
		t.Errorf("send by the member who left: %d %s; want 403", r.Status, r.Body)
	}
	var msgs []struct{ ID int64 }
	s2.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?limit=100", room), a.Access, nil).JSON(t, &msgs)
	if len(msgs) != 26 {
		t.Errorf("room lists %d messages; want 26", len(msgs))
	}
}
