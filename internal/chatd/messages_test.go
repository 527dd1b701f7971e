package chatd_test

// Messages (API.md section 4): concurrent sends, idempotent retries,
// read-your-writes, pagination and read receipts.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
)

// sendAll sends n messages into room, spread over senders, all at once, and
// returns the sent messages by id.
func (s *testServer) sendAll(t testing.TB, room int64, senders []user, perSender int) map[int64]messageJSON {
	t.Helper()
	var mu sync.Mutex
	sent := map[int64]messageJSON{}
	var wg sync.WaitGroup
	for _, u := range senders {
		for i := range perSender {
			wg.Go(func() {
				text := fmt.Sprintf("from %d #%d", u.ID, i)
				r, err := s.tryJSON("POST", "/send-message/", u.Access, map[string]any{"conversation_id": room, "text": text})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Status != http.StatusCreated {
					t.Errorf("send %q: status = %d; want 201 (body %s)", text, r.Status, r.Body)
					return
				}
				var m messageJSON
				if err := json.Unmarshal(r.Body, &m); err != nil {
					t.Errorf("send %q: %v", text, err)
					return
				}
				if m.Text != text || m.Sender != u.ID || m.Conversation != room {
					t.Errorf("send %q: got %+v", text, m)
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := sent[m.ID]; dup {
					t.Errorf("id %d given to %q and %q", m.ID, prev.Text, text)
				}
				sent[m.ID] = m
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return sent
}

// sortedIDs returns the keys of sent in ascending order.
func sortedIDs(sent map[int64]messageJSON) []int64 {
	out := make([]int64, 0, len(sent))
	for id := range sent {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// walk follows one rel of the Link headers from path, collecting every
// message, and checks that each page is ascending.
func (s *testServer) walk(t testing.TB, u user, path, rel string) []int64 {
	t.Helper()
	var pages [][]int64
	for seen := 0; path != ""; seen++ {
		if seen > 1000 {
			t.Fatalf("following rel=%q did not end", rel)
		}
		r := s.callJSON(t, "GET", path, u.Access, nil)
		page := ids(decodeMessages(t, r))
		if !slices.IsSorted(page) {
			t.Fatalf("%s: ids %v not ascending", path, page)
		}
		pages = append(pages, page)
		path = s.links(t, r)[rel]
	}
	if rel == "prev" {
		slices.Reverse(pages)
	}
	return slices.Concat(pages...)
}

// TestConcurrentSends: 200 sends into one room at once (10 users × 20) all
// succeed, and every listing shows each exactly once, in id order, which is
// also the room's log order.
func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	senders := make([]user, 10)
	for i := range senders {
		senders[i] = s.newUser()
	}
	room := s.room(senders[0], senders[1:]...)
	sent := s.sendAll(t, room, senders, 20)
	want := sortedIDs(sent)
	if len(want) != 200 {
		t.Fatalf("%d distinct ids; want 200", len(want))
	}

	t.Run("one page of 200", func(t *testing.T) {
		got, r := s.conversationMessages(t, senders[3], room, "?limit=200")
		if !slices.Equal(ids(got), want) {
			t.Fatalf("ids = %v; want %v", ids(got), want)
		}
		for _, m := range got {
			if w := sent[m.ID]; m.Text != w.Text || m.Sender != w.Sender || len(m.Receivers) != 9 || slices.Contains(m.Receivers, m.Sender) {
				t.Fatalf("listed %+v; want %+v with the 9 others as receivers", m, w)
			}
		}
		if l := s.links(t, r); len(l) != 0 {
			t.Fatalf("Link = %v; want none (all 200 on one page)", l)
		}
	})
	t.Run("forward with after", func(t *testing.T) {
		if got := s.walk(t, senders[5], fmt.Sprintf("/list-conversation-messages/%d/?after=0&limit=37", room), "next"); !slices.Equal(got, want) {
			t.Fatalf("paging forward = %v; want %v", got, want)
		}
	})
	t.Run("back with before", func(t *testing.T) {
		if got := s.walk(t, senders[7], fmt.Sprintf("/list-conversation-messages/%d/", room), "prev"); !slices.Equal(got, want) {
			t.Fatalf("paging back = %v; want %v", got, want)
		}
	})
	t.Run("list-messages", func(t *testing.T) {
		if got := s.walk(t, senders[9], "/list-messages/?limit=64", "prev"); !slices.Equal(got, want) {
			t.Fatalf("list-messages = %v; want %v", got, want)
		}
	})
	t.Run("log order", func(t *testing.T) {
		r := s.callJSON(t, "GET", fmt.Sprintf("/audit/conversations/%d/", room), senders[0].Access, nil)
		wantStatus(t, r, http.StatusOK)
		var events []struct {
			Type string
			Data struct {
				MessageID int64 `json:"message_id"`
			}
		}
		r.JSON(t, &events)
		var logOrder []int64
		for _, e := range events {
			if e.Type == "chat.message_sent" {
				logOrder = append(logOrder, e.Data.MessageID)
			}
		}
		if !slices.Equal(logOrder, want) {
			t.Fatalf("message ids in log order = %v; want ascending %v", logOrder, want)
		}
	})
}

// TestIdempotentSend: a retried send with the same Idempotency-Key returns
// the first message and appends nothing.
func TestIdempotentSend(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room, other := s.room(a, b), s.room(a, b)
	count := func(t testing.TB, room int64, text string) int {
		n := 0
		for _, m := range firstOf(s.conversationMessages(t, a, room, "?limit=200")) {
			if m.Text == text {
				n++
			}
		}
		return n
	}

	t.Run("sequential retry", func(t *testing.T) {
		body := map[string]any{"conversation_id": room, "text": "once"}
		first := s.sendJSON(t, a, body, "Idempotency-Key", "key-1")
		again := s.sendJSON(t, a, body, "Idempotency-Key", "key-1")
		if !reflect.DeepEqual(again, first) {
			t.Fatalf("retry = %+v; want the first message %+v", again, first)
		}
		changed := s.sendJSON(t, a, map[string]any{"conversation_id": room, "text": "changed my mind"}, "Idempotency-Key", "key-1")
		if changed.ID != first.ID || changed.Text != "once" {
			t.Fatalf("retry with another text = %+v; want the first message %d", changed, first.ID)
		}
		if n := count(t, room, "once"); n != 1 {
			t.Fatalf("%d copies stored; want 1", n)
		}
		if n := count(t, room, "changed my mind"); n != 0 {
			t.Fatalf("retry stored its own text %d times; want 0", n)
		}
	})

	t.Run("same key, another room", func(t *testing.T) {
		s.sendJSON(t, a, map[string]any{"conversation_id": room, "text": "here"}, "Idempotency-Key", "key-2")
		r := s.callJSON(t, "POST", "/send-message/", a.Access, map[string]any{"conversation_id": other, "text": "there"}, "Idempotency-Key", "key-2")
		wantDetail(t, r, http.StatusConflict, "")
		if !strings.Contains(strings.ToLower(string(r.Body)), "idempotency-key") {
			t.Fatalf("error %s does not say what is wrong", r.Body)
		}
		if n := count(t, other, "there"); n != 0 {
			t.Fatalf("reused key stored %d messages in the other room; want 0", n)
		}
	})

	t.Run("a refused send leaves its key unused", func(t *testing.T) {
		r := s.callJSON(t, "POST", "/send-message/", a.Access, map[string]any{"conversation_id": 999999, "text": "lost"}, "Idempotency-Key", "key-6")
		wantDetail(t, r, http.StatusNotFound, "")
		stranger := s.newUser()
		r = s.callJSON(t, "POST", "/send-message/", stranger.Access, map[string]any{"conversation_id": room, "text": "not mine"}, "Idempotency-Key", "key-6")
		wantDetail(t, r, http.StatusForbidden, "")
		first := s.sendJSON(t, a, map[string]any{"conversation_id": room, "text": "right room"}, "Idempotency-Key", "key-6")
		again := s.sendJSON(t, a, map[string]any{"conversation_id": room, "text": "right room"}, "Idempotency-Key", "key-6")
		if again.ID != first.ID || count(t, room, "right room") != 1 {
			t.Fatalf("retry = %+v; want the first message %d, stored once", again, first.ID)
		}
	})

	t.Run("keys are per user", func(t *testing.T) {
		mine := s.sendJSON(t, a, map[string]any{"conversation_id": room, "text": "mine"}, "Idempotency-Key", "key-3")
		theirs := s.sendJSON(t, b, map[string]any{"conversation_id": room, "text": "theirs"}, "Idempotency-Key", "key-3")
		if theirs.ID == mine.ID || theirs.Sender != b.ID {
			t.Fatalf("b's send with a's key = %+v; want a new message of b", theirs)
		}
	})

	t.Run("client_id field", func(t *testing.T) {
		body := map[string]any{"conversation_id": room, "text": "by client id", "client_id": "c-1"}
		first, again := s.sendJSON(t, b, body), s.sendJSON(t, b, body)
		if again.ID != first.ID {
			t.Fatalf("retry id = %d; want %d", again.ID, first.ID)
		}
		if n := count(t, room, "by client id"); n != 1 {
			t.Fatalf("%d copies stored; want 1", n)
		}
	})

	t.Run("multipart retry", func(t *testing.T) {
		parts := []formPart{
			{name: "conversation_id", value: fmt.Sprint(room)}, {name: "text", value: "with a picture"},
			{name: "attachment_picture", file: "p.png", value: string(pngBytes(t, 21))},
		}
		r1 := s.callMultipart(t, "/send-message/", a, parts, "Idempotency-Key", "key-4")
		r2 := s.callMultipart(t, "/send-message/", a, parts, "Idempotency-Key", "key-4")
		wantStatus(t, r1, http.StatusCreated)
		wantStatus(t, r2, http.StatusCreated)
		if m1, m2 := decodeMessage(t, r1.Body), decodeMessage(t, r2.Body); !reflect.DeepEqual(m1, m2) {
			t.Fatalf("retry = %+v; want %+v", m2, m1)
		}
		if n := count(t, room, "with a picture"); n != 1 {
			t.Fatalf("%d copies stored; want 1", n)
		}
	})

	t.Run("concurrent duplicates", func(t *testing.T) {
		const n = 12
		got := make([]messageJSON, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r, err := s.tryJSON("POST", "/send-message/", b.Access, map[string]any{"conversation_id": room, "text": "racing"}, "Idempotency-Key", "key-5")
				if err != nil {
					t.Error(err)
					return
				}
				if r.Status != http.StatusCreated {
					t.Errorf("status = %d; want 201 (body %s)", r.Status, r.Body)
					return
				}
				if err := json.Unmarshal(r.Body, &got[i]); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for _, m := range got[1:] {
			if m.ID != got[0].ID {
				t.Fatalf("concurrent retries got ids %d and %d; want one message", got[0].ID, m.ID)
			}
		}
		if c := count(t, room, "racing"); c != 1 {
			t.Fatalf("%d copies stored; want 1", c)
		}
	})
}

// unread returns u's unread_count of room.
func (s *testServer) unread(t testing.TB, u user, room int64) int64 {
	t.Helper()
	r, ok := chatroomOf(s.chatrooms(t, u), room)
	if !ok {
		t.Fatalf("user %d does not list room %d", u.ID, room)
	}
	return *r.UnreadCount
}

// TestReadYourWrites: a list right after each write shows it, every time.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)
	for i := range 15 {
		id := s.send(a, room, fmt.Sprintf("ryw %d", i))
		for _, u := range []user{a, b} {
			got := firstOf(s.conversationMessages(t, u, room, ""))
			if len(got) == 0 || got[len(got)-1].ID != id {
				t.Fatalf("round %d: user %d's list does not end with message %d just sent", i, u.ID, id)
			}
		}
		if got := ids(decodeMessages(t, s.callJSON(t, "GET", "/list-messages/", b.Access, nil))); !slices.Contains(got, id) {
			t.Fatalf("round %d: b's list-messages %v lacks %d", i, got, id)
		}
		if n := s.unread(t, b, room); n != 1 {
			t.Fatalf("round %d: b's unread_count = %d; want 1", i, n)
		}
		wantStatus(t, s.callJSON(t, "POST", "/read-message/", b.Access, map[string]any{"conversation_id": room, "message_ids": []int64{id}}), http.StatusOK)
		got := firstOf(s.conversationMessages(t, a, room, ""))
		if last := got[len(got)-1]; !slices.Equal(last.ReadBy, []int64{b.ID}) {
			t.Fatalf("round %d: read_by = %v right after the read; want [%d]", i, last.ReadBy, b.ID)
		}
		if n := s.unread(t, b, room); n != 0 {
			t.Fatalf("round %d: b's unread_count = %d after reading; want 0", i, n)
		}

		wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", c.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
		if r, ok := chatroomOf(s.chatrooms(t, a), room); !ok || !slices.Contains(r.Members, c.ID) {
			t.Fatalf("round %d: members %v right after c joined; want %d in them", i, r.Members, c.ID)
		}
		wantStatus(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), c.Access, nil), http.StatusOK)
		if _, ok := chatroomOf(s.chatrooms(t, c), room); ok {
			t.Fatalf("round %d: c still lists the room right after leaving", i)
		}
	}
}

// TestPagination covers limit (default 50, at most 200), before, after and
// the Link header, on both lists.
func TestPagination(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	noise := s.room(a)
	early := s.send(a, noise, "before the room") // an id below every id of room
	room := s.room(a, b)
	all := sortedIDs(s.sendAll(t, room, []user{a, b}, 115))
	s.send(a, noise, "elsewhere")
	if len(all) != 230 {
		t.Fatalf("%d messages; want 230", len(all))
	}
	last := all[len(all)-1]

	base := fmt.Sprintf("/list-conversation-messages/%d/", room)
	prev := func(before int64, limit int) string { return fmt.Sprintf("%s?before=%d&limit=%d", base, before, limit) }
	next := func(after int64, limit int) string { return fmt.Sprintf("%s?after=%d&limit=%d", base, after, limit) }
	tests := []struct {
		name, query string
		want        []int64
		prev, next  string // the Link targets; "" when absent
	}{
		{"default is the newest 50", "", all[180:], prev(all[180], 50), ""},
		{"limit", "?limit=10", all[220:], prev(all[220], 10), ""},
		{"limit capped at 200", "?limit=500", all[30:], prev(all[30], 200), ""},
		{"before", fmt.Sprintf("?before=%d&limit=10", all[100]), all[90:100], prev(all[90], 10), next(all[99], 10)},
		{"before near the start", fmt.Sprintf("?before=%d&limit=10", all[5]), all[:5], "", next(all[4], 10)},
		{"before past the end", fmt.Sprintf("?before=%d&limit=10", last+1000), all[220:], prev(all[220], 10), ""},
		{"before the first: empty, linking forward", fmt.Sprintf("?before=%d", all[0]), []int64{}, "", next(all[0]-1, 50)},
		{"after", fmt.Sprintf("?after=%d&limit=10", all[100]), all[101:111], prev(all[101], 10), next(all[110], 10)},
		{"after near the end", fmt.Sprintf("?after=%d", all[225]), all[226:], prev(all[226], 50), ""},
		{"after 0 is the start", "?after=0&limit=10", all[:10], "", next(all[9], 10)},
		{"after an id below the room", fmt.Sprintf("?after=%d&limit=10", early), all[:10], "", next(all[9], 10)},
		{"after the last: empty, linking back", fmt.Sprintf("?after=%d", last), []int64{}, prev(last+1, 50), ""},
		{"after far past the last", fmt.Sprintf("?after=%d&limit=5", last+1000), []int64{}, prev(last+1001, 5), ""},
		// No id lies past the largest: the link back is the newest page,
		// never an overflowed cursor.
		{"after the largest id", fmt.Sprintf("?after=%d&limit=5", int64(math.MaxInt64)), []int64{}, base + "?limit=5", ""},
		{"before the largest id", fmt.Sprintf("?before=%d&limit=10", int64(math.MaxInt64)), all[220:], prev(all[220], 10), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, r := s.conversationMessages(t, b, room, tt.query)
			if !slices.Equal(ids(got), tt.want) {
				t.Fatalf("ids = %v; want %v", ids(got), tt.want)
			}
			l := s.links(t, r)
			if l["prev"] != tt.prev || l["next"] != tt.next || len(l) > 2 {
				t.Fatalf("Link = %q; want prev %q, next %q", r.Header.Get("Link"), tt.prev, tt.next)
			}
		})
	}

	t.Run("bad parameters", func(t *testing.T) {
		for _, tt := range []struct {
			query string
			field string // "": a detail
		}{
			{"?limit=abc", "limit"}, {"?limit=-1", "limit"}, {"?limit=0", "limit"}, {"?limit=99999999999999999999", "limit"}, {"?before=x", "before"}, {"?before=-5", "before"}, {"?before=0", "before"},
			{"?after=1.5", "after"}, {fmt.Sprintf("?before=%d&after=%d", all[9], all[1]), ""},
		} {
			r := s.callJSON(t, "GET", base+tt.query, a.Access, nil)
			if tt.field == "" {
				wantDetail(t, r, http.StatusBadRequest, "")
			} else {
				wantFields(t, r, map[string][]string{tt.field: nil})
			}
		}
	})

	t.Run("list-messages", func(t *testing.T) {
		r := s.callJSON(t, "GET", "/list-messages/", b.Access, nil)
		if got := ids(decodeMessages(t, r)); !slices.Equal(got, all[180:]) {
			t.Fatalf("b's list-messages = %v; want %v", got, all[180:])
		}
		if l := s.links(t, r); l["prev"] != fmt.Sprintf("/list-messages/?before=%d&limit=50", all[180]) || l["next"] != "" {
			t.Fatalf("Link = %v; want only prev", l)
		}
		if got := s.walk(t, b, "/list-messages/?after=0&limit=200", "next"); !slices.Equal(got, all) {
			t.Fatalf("b's list-messages forward = %v; want %v", got, all)
		}
		// a sent in the other room too.
		if got := s.walk(t, a, "/list-messages/?limit=200", "prev"); len(got) != 232 || got[0] != early {
			t.Fatalf("a's list-messages has %d messages starting %v; want 232 starting %d", len(got), got[:1], early)
		}
	})
}

// TestReadReceipts covers read-message: read_by, unread_count, idempotent
// re-reads, own messages, and ids from elsewhere.
func TestReadReceipts(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room, other := s.room(a, b, c), s.room(a, b)
	m1, m2, m3 := s.send(a, room, "one"), s.send(a, room, "two"), s.send(b, room, "three")
	elsewhere := s.send(a, other, "not here")

	read := func(t testing.TB, u user, msgs ...int64) response {
		t.Helper()
		return s.callJSON(t, "POST", "/read-message/", u.Access, map[string]any{"conversation_id": room, "message_ids": msgs})
	}
	readBy := func(t testing.TB) map[int64][]int64 {
		t.Helper()
		out := map[int64][]int64{}
		for _, m := range firstOf(s.conversationMessages(t, c, room, "")) {
			out[m.ID] = m.ReadBy
		}
		return out
	}
	check := func(t testing.TB, want map[int64][]int64, unread map[int64]int64) {
		t.Helper()
		if got := readBy(t); !reflect.DeepEqual(got, want) {
			t.Fatalf("read_by = %v; want %v", got, want)
		}
		for _, u := range []user{a, b, c} {
			if got := s.unread(t, u, room); got != unread[u.ID] {
				t.Fatalf("user %d unread_count = %d; want %d", u.ID, got, unread[u.ID])
			}
		}
	}
	check(t, map[int64][]int64{m1: {}, m2: {}, m3: {}}, map[int64]int64{a.ID: 1, b.ID: 2, c.ID: 3})

	steps := []struct {
		name   string
		u      user
		msgs   []int64
		readBy map[int64][]int64
		unread map[int64]int64
	}{
		{"b reads one", b, []int64{m1}, map[int64][]int64{m1: {b.ID}, m2: {}, m3: {}}, map[int64]int64{a.ID: 1, b.ID: 1, c.ID: 3}},
		{"b reads it again", b, []int64{m1}, map[int64][]int64{m1: {b.ID}, m2: {}, m3: {}}, map[int64]int64{a.ID: 1, b.ID: 1, c.ID: 3}},
		{"b reads all, own and duplicates included", b, []int64{m3, m1, m2, m2},
			map[int64][]int64{m1: {b.ID}, m2: {b.ID}, m3: {}}, map[int64]int64{a.ID: 1, b.ID: 0, c.ID: 3}},
		{"c reads in any order", c, []int64{m2, m1}, map[int64][]int64{m1: {b.ID, c.ID}, m2: {b.ID, c.ID}, m3: {}},
			map[int64]int64{a.ID: 1, b.ID: 0, c.ID: 1}},
		{"a reads own messages: no-op", a, []int64{m1, m2}, map[int64][]int64{m1: {b.ID, c.ID}, m2: {b.ID, c.ID}, m3: {}},
			map[int64]int64{a.ID: 1, b.ID: 0, c.ID: 1}},
		{"a reads b's", a, []int64{m3}, map[int64][]int64{m1: {b.ID, c.ID}, m2: {b.ID, c.ID}, m3: {a.ID}},
			map[int64]int64{a.ID: 0, b.ID: 0, c.ID: 1}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := read(t, st.u, st.msgs...)
			wantStatus(t, r, http.StatusOK)
			if got := r.text(); got != `{"success":true}` {
				t.Fatalf("read-message = %s; want {\"success\":true}", got)
			}
			check(t, st.readBy, st.unread)
		})
	}

	t.Run("concurrent reads", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 10 {
			u := []user{a, b}[i%2]
			wg.Go(func() {
				r, err := s.tryJSON("POST", "/read-message/", u.Access, map[string]any{"conversation_id": room, "message_ids": []int64{m3, m1, m2}})
				if err != nil || r.Status != http.StatusOK {
					t.Errorf("read: %v %d %s", err, r.Status, r.Body)
				}
			})
		}
		wg.Go(func() {
			r, err := s.tryJSON("POST", "/read-message/", c.Access, map[string]any{"conversation_id": room, "message_ids": []int64{m3}})
			if err != nil || r.Status != http.StatusOK {
				t.Errorf("read: %v %d %s", err, r.Status, r.Body)
			}
		})
		wg.Wait()
		check(t, map[int64][]int64{m1: {b.ID, c.ID}, m2: {b.ID, c.ID}, m3: {a.ID, c.ID}}, map[int64]int64{})
	})

	t.Run("a later member's read of an older message is a no-op", func(t *testing.T) {
		d := s.with(t).newUser()
		wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", d.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
		wantStatus(t, read(t, d, m1), http.StatusOK)
		if got := readBy(t)[m1]; !slices.Equal(got, []int64{b.ID, c.ID}) {
			t.Fatalf("read_by = %v; want [%d %d]", got, b.ID, c.ID)
		}
		// Receivers were fixed when the message was sent.
		for _, m := range firstOf(s.conversationMessages(t, d, room, "")) {
			if slices.Contains(m.Receivers, d.ID) {
				t.Fatalf("message %d receivers = %v; want them without %d, who joined later", m.ID, m.Receivers, d.ID)
			}
		}
		if n := s.unread(t, d, room); n != 0 {
			t.Fatalf("later member's unread_count = %d; want 0", n)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			body map[string]any
		}{
			{"message of another room", map[string]any{"conversation_id": room, "message_ids": []int64{elsewhere}}},
			{"some of another room", map[string]any{"conversation_id": room, "message_ids": []int64{m1, elsewhere}}},
			{"no such message", map[string]any{"conversation_id": room, "message_ids": []int64{999999}}},
			{"empty list", map[string]any{"conversation_id": room, "message_ids": []int64{}}},
			{"not integers", map[string]any{"conversation_id": room, "message_ids": []string{"x"}}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				wantFields(t, s.callJSON(t, "POST", "/read-message/", b.Access, tt.body), map[string][]string{"message_ids": nil})
			})
		}
		wantFields(t, s.callJSON(t, "POST", "/read-message/", b.Access, map[string]any{"message_ids": []int64{m1}}),
			map[string][]string{"conversation_id": {"This field is required."}})
		// The rejected reads marked nothing in the other room.
		for _, m := range firstOf(s.conversationMessages(t, a, other, "")) {
			if len(m.ReadBy) != 0 {
				t.Fatalf("message %d of the other room read_by = %v; want []", m.ID, m.ReadBy)
			}
		}
	})
}

// TestListMessagesAcrossRoomsInLogOrder: message ids rise in each room's log
// order, not across rooms (each process takes ids in blocks), so a message
// of one room can be projected after a message of another with a higher
// id. A client that paged /list-messages/ up to the higher id still gets
// the lower one, sent later, on its next page.
func TestListMessagesAcrossRoomsInLogOrder(t *testing.T) {
	t.Parallel()
	cfgA := chatd.Config{
		Addr:        "127.0.0.1:0",
		DatabaseURL: pgtest.NewDatabase(t),
		DataDir:     t.TempDir(),
		JWTKeyFile:  filepath.Join(t.TempDir(), "jwt-ed25519.pem"), // shared: tokens verify on both
		BcryptCost:  4,
		LeaderRetry: 100 * time.Millisecond,
	}
	useEventStore(t, &cfgA)
	a := startWith(t, cfgA)
	alice, carol := a.newUser(), a.newUser()
	room1, room2 := a.room(alice, carol), a.room(alice, carol)
	cfgB := cfgA
	cfgB.DataDir = t.TempDir()
	b := startWith(t, cfgB)

	low := a.send(alice, room1, "from A's block of ids")
	high := b.send(alice, room2, "from B's block, higher")
	r := a.callJSON(t, "GET", "/list-messages/?after=0", carol.Access, nil)
	if got := ids(decodeMessages(t, r)); !slices.Equal(got, []int64{low, high}) {
		t.Fatalf("carol's messages = %v; want [%d %d]", got, low, high)
	}
	later := a.send(alice, room1, "a lower id, projected later")
	if later > high {
		t.Fatalf("setup: the later message has id %d, above %d; want a lower one (ids in blocks per process)", later, high)
	}

	// The client pages on from the highest id it has seen.
	r = a.callJSON(t, "GET", fmt.Sprintf("/list-messages/?after=%d", high), carol.Access, nil)
	if got := ids(decodeMessages(t, r)); !slices.Equal(got, []int64{later}) {
		t.Fatalf("carol's messages after %d = %v; want [%d], sent after it", high, got, later)
	}
	// Following the links either way, page by page, gives each message once.
	if got := a.walk(t, carol, "/list-messages/?after=0&limit=1", "next"); !slices.Equal(got, []int64{low, high, later}) {
		t.Fatalf("paging forward = %v; want [%d %d %d] (log order)", got, low, high, later)
	}
	if got := a.walk(t, carol, "/list-messages/?limit=1", "prev"); !slices.Equal(got, []int64{low, high, later}) {
		t.Fatalf("paging back = %v; want [%d %d %d] (log order)", got, low, high, later)
	}
	// A page of several shows them in id order.
	r = a.callJSON(t, "GET", "/list-messages/", carol.Access, nil)
	if got := ids(decodeMessages(t, r)); !slices.Equal(got, []int64{low, later, high}) {
		t.Fatalf("carol's newest page = %v; want [%d %d %d] (id order)", got, low, later, high)
	}
}

// TestListMessagesAcrossMemberships: /list-messages/ holds the messages a
// user sent or received, in every room they have been in, and nothing
// sent before they joined or while they were away; unread_count counts
// what they received and have not read, across a leave and a return.
func TestListMessagesAcrossMemberships(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, d := s.newUser(), s.newUser(), s.newUser()
	room, other := s.room(a, b), s.room(a, d)
	join := func(u user) {
		t.Helper()
		wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", u.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
	}
	leave := func(u user) {
		t.Helper()
		wantStatus(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), u.Access, nil), http.StatusOK)
	}
	mine := func(t testing.TB, want ...int64) {
		t.Helper()
		if got := s.walk(t, d, "/list-messages/?after=0&limit=1", "next"); !slices.Equal(got, want) {
			t.Fatalf("d's messages paging forward = %v; want %v", got, want)
		}
		if got := s.walk(t, d, "/list-messages/?limit=1", "prev"); !slices.Equal(got, want) {
			t.Fatalf("d's messages paging back = %v; want %v", got, want)
		}
		sorted := slices.Sorted(slices.Values(want))
		if got := ids(decodeMessages(t, s.callJSON(t, "GET", "/list-messages/", d.Access, nil))); !slices.Equal(got, sorted) {
			t.Fatalf("d's newest page = %v; want %v", got, sorted)
		}
	}

	m1 := s.send(a, room, "before d joined")
	join(d)
	m2 := s.send(b, room, "to d")
	m3 := s.send(d, room, "from d")
	x1 := s.send(a, other, "in the other room")
	if n := s.unread(t, d, room); n != 1 {
		t.Fatalf("d's unread_count = %d; want 1 (m2)", n)
	}
	leave(d)
	m4 := s.send(a, room, "while d is away")
	mine(t, m2, m3, x1)
	join(d)
	if n := s.unread(t, d, room); n != 1 {
		t.Fatalf("d's unread_count after returning = %d; want 1 (m2, still unread)", n)
	}
	m5 := s.send(a, room, "after d returned")
	mine(t, m2, m3, x1, m5)
	if n := s.unread(t, d, room); n != 2 {
		t.Fatalf("d's unread_count = %d; want 2 (m2, m5)", n)
	}
	wantStatus(t, s.callJSON(t, "POST", "/read-message/", d.Access, map[string]any{"conversation_id": room, "message_ids": []int64{m2, m4}}), http.StatusOK)
	if n := s.unread(t, d, room); n != 1 {
		t.Fatalf("d's unread_count after reading m2 (and m4, not theirs) = %d; want 1", n)
	}
	if n := s.unread(t, d, other); n != 1 {
		t.Fatalf("d's unread_count of the other room = %d; want 1", n)
	}
	if n := s.unread(t, b, room); n != 4 {
		t.Fatalf("b's unread_count = %d; want 4 (m1, m3, m4, m5)", n)
	}
	if got := ids(decodeMessages(t, s.callJSON(t, "GET", "/list-messages/", b.Access, nil))); !slices.Equal(got, []int64{m1, m2, m3, m4, m5}) {
		t.Fatalf("b's messages = %v; want [%d %d %d %d %d]", got, m1, m2, m3, m4, m5)
	}
}

// TestListMessagesPagesMergeRooms: /list-messages/ merges the user's rooms
// in log order at any page size, forward and back, across rooms of every
// activity, one the user left and one they joined late.
func TestListMessagesPagesMergeRooms(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u, v := s.newUser(), s.newUser()
	var rooms []int64
	for range 6 {
		rooms = append(rooms, s.room(v, u))
	}
	late := s.room(v)
	rng := rand.New(rand.NewPCG(1, 2))
	var want []int64
	away := map[int64]bool{late: true} // rooms u is not in
	for i := range 60 {
		switch i {
		case 20:
			wantStatus(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", rooms[0]), u.Access, nil), http.StatusOK)
			away[rooms[0]] = true
		case 30:
			wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", u.Access, map[string]any{"chatroom_id": late}), http.StatusCreated)
			away[late] = false
		}
		// Rooms of every activity: the first rooms get most messages.
		all := append(slices.Clone(rooms), late)
		room := all[min(rng.IntN(len(all)), rng.IntN(len(all)))]
		sender := v
		if rng.IntN(4) == 0 && !away[room] {
			sender = u
		}
		id := s.send(sender, room, fmt.Sprintf("m%d", i))
		if !away[room] {
			want = append(want, id)
		}
	}
	for _, limit := range []int{1, 2, 3, 7, 50} {
		if got := s.walk(t, u, fmt.Sprintf("/list-messages/?after=0&limit=%d", limit), "next"); !slices.Equal(got, want) {
			t.Fatalf("limit %d forward = %v; want %v", limit, got, want)
		}
		if got := s.walk(t, u, fmt.Sprintf("/list-messages/?limit=%d", limit), "prev"); !slices.Equal(got, want) {
			t.Fatalf("limit %d back = %v; want %v", limit, got, want)
		}
	}
}
