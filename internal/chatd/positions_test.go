package chatd_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
)

// sendWithPosition posts a text message and returns its id and the
// position the answer carries.
func (s *testServer) sendWithPosition(t testing.TB, u user, room int64, text string) (int64, string) {
	t.Helper()
	r, err := s.tryJSON("POST", "/send-message/", u.Access, map[string]any{"conversation_id": room, "text": text})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusCreated {
		t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	var m messageJSON
	r.JSON(t, &m)
	if m.Position == "" {
		t.Fatalf("send answered %s; want a position", r.Body)
	}
	return m.ID, m.Position
}

// nextMessage reads frames until a message frame, skipping the others
// (member_joined of the room's start).
func (c *wsConn) nextMessage(t testing.TB) wsFrame {
	t.Helper()
	for {
		if f := c.next(t); f.Type == "message" {
			return f
		}
	}
}

// TestPositions: every message in REST answers carries the position its
// WebSocket frame carries, and a socket resumes from it; since=0 starts
// at the room's start and since=now at the log's end.
func TestPositions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	live := s.wsConnect(b, room, "")

	var ids []int64
	pos := map[int64]string{}
	for i := range 3 {
		id, p := s.sendWithPosition(t, a, room, fmt.Sprintf("m%d", i))
		f := live.expectMessage(t, id)
		if f.Position != p {
			t.Fatalf("message %d: frame position %q; the send answered %q", id, f.Position, p)
		}
		ids, pos[id] = append(ids, id), p
	}

	t.Run("lists", func(t *testing.T) {
		s := s.wsFor(t)
		for _, path := range []string{fmt.Sprintf("/list-conversation-messages/%d/", room), "/list-messages/"} {
			var msgs []messageJSON
			s.callJSON(t, "GET", path, b.Access, nil).JSON(t, &msgs)
			if len(msgs) != len(ids) {
				t.Fatalf("%s: %d messages; want %d", path, len(msgs), len(ids))
			}
			for _, m := range msgs {
				if m.Position != pos[m.ID] {
					t.Errorf("%s: message %d position %q; want %q", path, m.ID, m.Position, pos[m.ID])
				}
			}
		}
	})

	t.Run("since a REST position", func(t *testing.T) {
		s := s.wsFor(t)
		so := s.wsConnect(b, room, "since="+url.QueryEscape(pos[ids[0]]))
		for _, id := range ids[1:] {
			if f := so.expectMessage(t, id); f.Position != pos[id] {
				t.Fatalf("resumed message %d at %q; want %q", id, f.Position, pos[id])
			}
		}
	})

	t.Run("since=0", func(t *testing.T) {
		s := s.wsFor(t)
		so := s.wsConnect(b, room, "since=0")
		for _, id := range ids {
			if f := so.nextMessage(t); f.ID != id {
				t.Fatalf("got message %d; want %d (the room from its start)", f.ID, id)
			}
		}
	})

	t.Run("since=now", func(t *testing.T) {
		s := s.wsFor(t)
		so := s.wsConnect(b, room, "since=now")
		id, p := s.sendWithPosition(t, a, room, "after now")
		if f := so.nextMessage(t); f.ID != id || f.Position != p {
			t.Fatalf("got message %d at %q; want only the new one, %d at %q", f.ID, f.Position, id, p)
		}
		live.expectMessage(t, id)
	})

	t.Run("bad since", func(t *testing.T) {
		s := s.wsFor(t)
		for _, q := range []string{"since=1", "since=later", "since=zz-"} {
			_, status, err := s.wsDial(nil, room, q, http.Header{"Authorization": {"Bearer " + b.Access}})
			if err == nil || status != http.StatusBadRequest {
				t.Errorf("%s: status %d, %v; want 400", q, status, err)
			}
		}
	})
}

// TestConcurrentSendPositions: senders racing into one room (their sends
// may be combined into one append) each get their own message's position,
// the one its frame carries.
func TestConcurrentSendPositions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	owner := s.newUser()
	const senders = 6
	users := make([]user, senders)
	for i := range users {
		users[i] = s.newUser()
	}
	room := s.room(owner, users...)
	so := s.wsConnect(owner, room, "")

	var mu sync.Mutex
	answered := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.tryJSON("POST", "/send-message/", u.Access, map[string]any{"conversation_id": room, "text": fmt.Sprint("m", i)})
			if err != nil || r.Status != http.StatusCreated {
				errs <- fmt.Errorf("send: %v %d %s", err, r.Status, r.Body)
				return
			}
			var m messageJSON
			if err := json.Unmarshal(r.Body, &m); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			answered[m.ID] = m.Position
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range senders {
		f := so.nextMessage(t)
		if want, ok := answered[f.ID]; !ok || f.Position != want {
			t.Errorf("message %d: frame position %q; the send answered %q", f.ID, f.Position, want)
		}
	}
}
