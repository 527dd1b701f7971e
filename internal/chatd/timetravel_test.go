package chatd_test

// Time travel (API.md section 9): ?as_of= on the room's messages, the
// caller's rooms and one message, computed from the log. Each moment is
// a log position a response handed out, or the time of an event the API
// showed: nothing waits on a clock.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// pastMessages lists a room's messages as of a moment.
func (s *testServer) pastMessages(t testing.TB, u user, room int64, asOf, extra string) []lifeJSON {
	t.Helper()
	r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?as_of=%s%s", room, url.QueryEscape(asOf), extra), u.Access, nil)
	msgs := decodeMessages(t, r) // every key of a message, no other
	var out []lifeJSON
	r.JSON(t, &out)
	_ = msgs
	return out
}

func texts(ms []lifeJSON) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		switch {
		case m.DeletedAt != nil:
			out[i] = "<deleted>"
		case m.Text == nil:
			out[i] = "<null>"
		default:
			out[i] = *m.Text
		}
	}
	return out
}

// microBefore is an API time one microsecond earlier.
func microBefore(t testing.TB, ts string) string {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("time %q: %v", ts, err)
	}
	return at.Add(-time.Microsecond).UTC().Format("2006-01-02T15:04:05.000000Z")
}

func TestTimeTravelMessages(t *testing.T) {
	t.Parallel()
	s := startServer(t, withAdmin)
	a, b, late, stranger := s.newUser(), s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)
	m1 := s.send(a, room, "first")
	m2 := s.send(b, room, "second")
	before := decodeLife(t, s.do("GET", msgPath(m2, ""), a.Access, nil))
	cut1 := before.Position // the room as it stood right after m2

	// Then the room changes: a read receipt, an edit, a reaction, a
	// delete, a new member, a new name, one more message.
	read := s.do("POST", "/read-message/", a.Access, map[string]any{"conversation_id": room, "message_ids": []int64{m2}})
	wantStatus(t, read, http.StatusOK)
	afterRead := read.Header.Get("X-Chat-Position")
	if afterRead == "" {
		t.Fatal("read-message answered without X-Chat-Position")
	}
	edited := decodeLife(t, s.do("PATCH", msgPath(m2, ""), b.Access, map[string]string{"text": "second, edited"}))
	decodeLife(t, s.do("PUT", reactionPath(m2, "👍"), a.Access, nil))
	wantStatus(t, s.do("DELETE", msgPath(m1, ""), a.Access, nil), http.StatusOK)
	wantStatus(t, s.do("POST", fmt.Sprintf("/chatrooms/%d/members/", room), a.Access, map[string]any{"user": late.ID}), http.StatusCreated)
	wantStatus(t, s.do("PATCH", fmt.Sprintf("/chatrooms/%d/", room), a.Access, map[string]any{"name": "renamed"}), http.StatusOK)
	m3 := s.send(late, room, "third")

	// Now: m1 is a tombstone, m2 edited with a reaction, m3 there.
	now := s.pastMessages(t, a, room, s.headPosition(t), "")
	if got := texts(now); !slices.Equal(got, []string{"<deleted>", "second, edited", "third"}) {
		t.Fatalf("as of the head: %q", got)
	}
	// As of cut1: both messages as sent, no edit, no reaction, unread.
	past := s.pastMessages(t, a, room, cut1, "")
	if got := texts(past); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("as of %s: %q; want the messages as sent", cut1, got)
	}
	if p := past[1]; p.ID != m2 || p.EditedAt != nil || p.DeletedAt != nil || len(p.Reactions) != 0 {
		t.Fatalf("m2 as of cut1 = %+v; want it unedited, without reactions", p)
	}
	var receipts []struct {
		ReadBy      []int64 `json:"read_by"`
		DeliveredTo []int64 `json:"delivered_to"`
	}
	readPast := func(asOf string) {
		r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?as_of=%s", room, url.QueryEscape(asOf)), a.Access, nil)
		wantStatus(t, r, http.StatusOK)
		r.JSON(t, &receipts)
	}
	readPast(cut1)
	if len(receipts[1].ReadBy) != 0 {
		t.Fatalf("m2 as of cut1 read by %v; a read it later", receipts[1].ReadBy)
	}
	readPast(afterRead)
	if !slices.Equal(receipts[1].ReadBy, []int64{a.ID}) || !slices.Contains(receipts[1].DeliveredTo, a.ID) {
		t.Fatalf("m2 as of the read receipt: read_by %v delivered_to %v; want a in both", receipts[1].ReadBy, receipts[1].DeliveredTo)
	}

	// By time: a microsecond before the edit the old text, at it the new.
	if got := texts(s.pastMessages(t, a, room, microBefore(t, *edited.EditedAt), "")); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("as of just before the edit: %q", got)
	}
	atEdit := s.pastMessages(t, a, room, *edited.EditedAt, "")
	if got := texts(atEdit); !slices.Equal(got, []string{"first", "second, edited"}) || atEdit[1].EditedAt == nil {
		t.Fatalf("as of the edit: %q %+v", got, atEdit)
	}

	// One message, as of then.
	one := decodeLife(t, s.do("GET", msgPath(m2, "?as_of="+url.QueryEscape(cut1)), b.Access, nil))
	if one.Text == nil || *one.Text != "second" || one.EditedAt != nil {
		t.Fatalf("GET m2 as of cut1 = %+v", one)
	}
	wantStatus(t, s.do("GET", msgPath(m3, "?as_of="+url.QueryEscape(cut1)), a.Access, nil), http.StatusNotFound)

	// Only members of then: late joined after cut1, the stranger never.
	wantStatus(t, s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?as_of=%s", room, url.QueryEscape(cut1)), late.Access, nil), http.StatusForbidden)
	wantStatus(t, s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?as_of=%s", room, url.QueryEscape(cut1)), stranger.Access, nil), http.StatusForbidden)
	wantStatus(t, s.do("GET", msgPath(m2, "?as_of="+url.QueryEscape(cut1)), late.Access, nil), http.StatusForbidden)
	if got := texts(s.pastMessages(t, late, room, s.headPosition(t), "")); len(got) != 3 {
		t.Fatalf("late as of now: %q", got)
	}
	// Before the room existed: 404. Not a moment: 400 naming the field.
	wantStatus(t, s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?as_of=2000-01-01T00:00:00Z", room), a.Access, nil), http.StatusNotFound)
	for _, bad := range []string{"yesterday", "12", "2023-13-01T00:00:00Z", ""} {
		r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?as_of=%s", room, url.QueryEscape(bad)), a.Access, nil)
		wantStatus(t, r, http.StatusBadRequest)
		if _, ok := r.Map(t)["as_of"]; !ok {
			t.Fatalf("as_of=%q: %s; want the as_of field named", bad, r.Body)
		}
	}

	// Paged like the live list, the links keeping the moment.
	r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?limit=1&as_of=%s", room, url.QueryEscape(cut1)), a.Access, nil)
	var page []lifeJSON
	r.JSON(t, &page)
	if texts(page)[0] != "second" {
		t.Fatalf("newest page of 1 as of cut1: %q", texts(page))
	}
	link := r.Header.Get("Link")
	if !strings.Contains(link, `rel="prev"`) || !strings.Contains(link, "as_of="+url.QueryEscape(cut1)) || strings.Contains(link, `rel="next"`) {
		t.Fatalf("Link = %q; want only prev, with the same as_of", link)
	}
	prev := strings.TrimPrefix(strings.SplitN(link, ">", 2)[0], "<"+s.base)
	r = s.do("GET", prev, a.Access, nil)
	r.JSON(t, &page)
	if got := texts(page); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("previous page as of cut1 (%s): %q", prev, got)
	}
	if link := r.Header.Get("Link"); !strings.Contains(link, `rel="next"`) || strings.Contains(link, `rel="prev"`) {
		t.Fatalf("Link of the oldest page = %q; want only next", link)
	}

	// Forgetting reaches the past too: b's message reads "[deleted]", a's
	// is intact.
	s.forget(t, b.ID)
	past = s.pastMessages(t, a, room, cut1, "")
	if got := texts(past); !slices.Equal(got, []string{"first", "[deleted]"}) {
		t.Fatalf("as of cut1 after forgetting b: %q", got)
	}
}

func TestTimeTravelChatrooms(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, late := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)
	other := s.room(b, a)
	hello := s.send(a, room, "hello")
	s.send(b, other, "later")
	cut := s.headPosition(t)
	read := s.do("POST", "/read-message/", b.Access, map[string]any{"conversation_id": room, "message_ids": []int64{hello}})
	wantStatus(t, read, http.StatusOK)
	afterRead := read.Header.Get("X-Chat-Position")
	wantStatus(t, s.do("PATCH", fmt.Sprintf("/chatrooms/%d/", room), a.Access, map[string]any{"name": "renamed", "description": "now described"}), http.StatusOK)
	wantStatus(t, s.do("POST", fmt.Sprintf("/chatrooms/%d/members/", room), a.Access, map[string]any{"user": late.ID}), http.StatusCreated)
	s.send(a, room, "newest")
	wantStatus(t, s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", other), a.Access, nil), http.StatusOK)

	type roomJSON struct {
		ID          int64   `json:"id"`
		Members     []int64 `json:"members"`
		Admins      []int64 `json:"admins"`
		Name        *string `json:"name"`
		Description *string `json:"description"`
		UnreadCount *int64  `json:"unread_count"`
		LastMessage *struct {
			lifeJSON
			ReadBy []int64 `json:"read_by"`
		} `json:"last_message"`
	}
	list := func(u user, asOf string) []roomJSON {
		t.Helper()
		r := s.do("GET", "/list-chatrooms/?as_of="+url.QueryEscape(asOf), u.Access, nil)
		wantStatus(t, r, http.StatusOK)
		var raws []json.RawMessage
		r.JSON(t, &raws)
		out := make([]roomJSON, len(raws))
		for i, raw := range raws {
			if err := json.Unmarshal(raw, &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	// As of cut: a is in both rooms, the most recently active first, with
	// the old name, no description, the old members and last messages.
	past := list(a, cut)
	if len(past) != 2 || past[0].ID != other || past[1].ID != room {
		t.Fatalf("a's rooms as of cut = %+v; want %d then %d", past, other, room)
	}
	p := past[1]
	if p.Name == nil || *p.Name != "room" || p.Description != nil || !slices.Equal(p.Members, []int64{a.ID, b.ID}) ||
		!slices.Equal(p.Admins, []int64{a.ID}) || p.UnreadCount != nil {
		t.Fatalf("room as of cut = %+v", p)
	}
	if p.LastMessage == nil || p.LastMessage.Text == nil || *p.LastMessage.Text != "hello" || len(p.LastMessage.ReadBy) != 0 {
		t.Fatalf("room's last message as of cut = %+v; want hello, unread", p.LastMessage)
	}
	// As of b's read receipt: hello read by b, in both users' lists.
	for _, u := range []user{a, b} {
		rooms := list(u, afterRead)
		if len(rooms) != 2 || rooms[1].ID != room || rooms[1].LastMessage == nil || !slices.Equal(rooms[1].LastMessage.ReadBy, []int64{b.ID}) {
			t.Fatalf("rooms of %d as of the read receipt = %+v; want hello read by %d", u.ID, rooms, b.ID)
		}
	}
	// late was not a member then.
	if got := list(late, cut); len(got) != 0 {
		t.Fatalf("late's rooms as of cut = %+v; want none", got)
	}
	// Now: a left the other room; this room is renamed, with late.
	now := list(a, s.headPosition(t))
	if len(now) != 1 || now[0].ID != room || *now[0].Name != "renamed" || *now[0].Description != "now described" ||
		len(now[0].Members) != 3 || *now[0].LastMessage.Text != "newest" {
		t.Fatalf("a's rooms as of now = %+v", now)
	}
	wantStatus(t, s.do("GET", "/list-chatrooms/?as_of=never", a.Access, nil), http.StatusBadRequest)
}

// headPosition is the log's head as the API writes positions.
func (s *testServer) headPosition(t testing.TB) string {
	t.Helper()
	s.caughtUp()
	head, err := s.Store().Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return head.String()
}

// TestTimeTravelLongRoom reads a room of several index blocks at moments
// around the blocks' edges: first while the readers fill the index, then
// again through it (where it says exactly how far to read), by position
// and by time.
func TestTimeTravelLongRoom(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	const n = 300
	ids := make([]int64, n)
	for i := range n {
		u := a
		if i%2 == 1 {
			u = b
		}
		ids[i] = s.send(u, room, fmt.Sprintf("m%d", i))
	}
	want := func(from, to int) []string { // texts of messages from..to
		var out []string
		for i := max(from, 0); i <= to; i++ {
			out = append(out, fmt.Sprintf("m%d", i))
		}
		return out
	}
	cuts := []int{0, 49, 120, 125, 126, 127, 128, 129, 200, 252, 253, 254, 255, 256, 299}
	for pass := range 2 { // the first fills the index, the second reads through it
		for _, k := range cuts {
			m := decodeLife(t, s.do("GET", msgPath(ids[k], ""), a.Access, nil))
			for _, asOf := range []string{m.Position, m.CreatedAt} {
				if got := texts(s.pastMessages(t, a, room, asOf, "")); !slices.Equal(got, want(k-49, k)) {
					t.Fatalf("pass %d: newest page as of message %d (%s): %q", pass, k, asOf, got)
				}
			}
		}
	}
	m := decodeLife(t, s.do("GET", msgPath(ids[200], ""), a.Access, nil))
	if got := texts(s.pastMessages(t, a, room, m.Position, fmt.Sprintf("&limit=10&before=%d", ids[60]))); !slices.Equal(got, want(50, 59)) {
		t.Fatalf("10 before message 60 as of message 200: %q", got)
	}
	if got := texts(s.pastMessages(t, a, room, m.Position, fmt.Sprintf("&limit=10&after=%d", ids[195]))); !slices.Equal(got, want(196, 200)) {
		t.Fatalf("10 after message 195 as of message 200: %q", got)
	}
}

// TestTimeTravelManyRooms lists more rooms as of a moment than the past's
// reader takes in one pass: all of them, most recently active first.
func TestTimeTravelManyRooms(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	const n = 70
	rooms := make([]int64, n)
	for i := range n {
		rooms[i] = s.room(a, b)
		s.send(b, rooms[i], fmt.Sprintf("m%d", i))
	}
	cut := s.headPosition(t)
	s.send(a, rooms[0], "later") // room 0 would come first now
	r := s.do("GET", "/list-chatrooms/?as_of="+url.QueryEscape(cut), a.Access, nil)
	wantStatus(t, r, http.StatusOK)
	var got []struct {
		ID          int64 `json:"id"`
		LastMessage *struct {
			Text string `json:"text"`
		} `json:"last_message"`
	}
	r.JSON(t, &got)
	if len(got) != n {
		t.Fatalf("%d rooms as of the cut; want %d", len(got), n)
	}
	for k, room := range got {
		i := n - 1 - k
		if room.ID != rooms[i] || room.LastMessage == nil || room.LastMessage.Text != fmt.Sprintf("m%d", i) {
			t.Fatalf("room %d as of the cut = %+v; want room %d with m%d", k, room, rooms[i], i)
		}
	}
}
