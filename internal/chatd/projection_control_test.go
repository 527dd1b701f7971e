package chatd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

// TestSearchPauseResume: a paused projection applies nothing and keeps its
// checkpoint while the other carries on, and catches up once resumed; a
// paused chat projection leaves /readyz ready, saying so.
func TestSearchPauseResume(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *chatd.Config) {
		c.ReadyLag = time.Millisecond             // any lag would be unready, but a deliberate one
		c.ProjectionWait = 300 * time.Millisecond // sends while chat is paused answer after it
	})
	ctx := context.Background()
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	s.send(a, room, "zebra before the pause")
	if hits, _ := s.search(b, "zebra"); len(hits) != 1 {
		t.Fatalf("search before the pause: %v", hitIDs(hits))
	}

	if err := projections.Pause(ctx, s.Pool(), projections.SearchName); err != nil {
		t.Fatal(err)
	}
	paused := s.send(a, room, "okapi while search is paused")
	s.caughtUp() // the chat projection carries on
	head, err := s.Store().Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := projections.ReadCheckpoint(ctx, s.Pool(), migrations.Search, projections.SearchName)
	if err != nil {
		t.Fatal(err)
	}
	if !cp.Less(head) {
		t.Fatalf("paused search checkpoint %s reached the head %s", cp, head)
	}
	if hits, _ := s.search(b, "okapi"); len(hits) != 0 {
		t.Fatalf("search while paused found %v; want nothing new", hitIDs(hits))
	}
	if st, _ := projections.ReadState(ctx, s.Pool(), projections.SearchName); st.Name() != projections.StatePaused {
		t.Fatalf("state = %q; want paused", st.Name())
	}
	if err := projections.Resume(ctx, s.Pool(), projections.SearchName); err != nil {
		t.Fatal(err)
	}
	s.searchCaughtUp()
	if hits, _ := s.search(b, "okapi"); len(hits) != 1 || hits[0].ID != paused {
		t.Fatalf("search after resume = %v; want [%d]", hitIDs(hits), paused)
	}

	t.Run("chat paused: ready, and caught up on resume", func(t *testing.T) {
		if err := projections.Pause(ctx, s.Pool(), projections.ChatName); err != nil {
			t.Fatal(err)
		}
		id := s.send(a, room, "sent while chat is paused") // answers once the bounded wait runs out
		r := s.do("GET", "/readyz", "", nil)
		var body struct{ Checks map[string]string }
		r.JSON(t, &body)
		if r.Status != http.StatusOK || body.Checks["projection"] != "paused" {
			t.Fatalf("readyz with chat paused = %d %s; want 200 and projection paused", r.Status, r.Body)
		}
		if err := projections.Resume(ctx, s.Pool(), projections.ChatName); err != nil {
			t.Fatal(err)
		}
		s.caughtUp()
		r = s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil)
		if !strings.Contains(string(r.Body), fmt.Sprintf(`"id":%d`, id)) {
			t.Fatalf("message %d not listed after resume: %s", id, r.Body)
		}
	})
}

// TestAuditTimeWindow: the audit endpoint's from and to take RFC 3339
// times (from inclusive, to exclusive); bad times are 400.
func TestAuditTimeWindow(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := s.newUser()
	room := s.room(a)
	for i := range 4 {
		s.send(a, room, fmt.Sprintf("w%d", i))
	}
	type event struct {
		Revision uint64 `json:"revision"`
		Time     string `json:"time"`
	}
	audit := func(t *testing.T, q url.Values) ([]event, response) {
		t.Helper()
		r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/?%s", room, q.Encode()), a.Access, nil)
		wantStatus(t, r, http.StatusOK)
		var out []event
		r.JSON(t, &out)
		return out, r
	}
	all, _ := audit(t, url.Values{})
	if len(all) != 5 {
		t.Fatalf("%d events; want 5", len(all))
	}
	revs := func(es []event) []uint64 {
		var out []uint64
		for _, e := range es {
			out = append(out, e.Revision)
		}
		return out
	}
	if got, _ := audit(t, url.Values{"from": {all[2].Time}}); fmt.Sprint(revs(got)) != "[2 3 4]" {
		t.Errorf("from the third event's time: revisions %v; want [2 3 4]", revs(got))
	}
	if got, _ := audit(t, url.Values{"to": {all[2].Time}}); fmt.Sprint(revs(got)) != "[0 1]" {
		t.Errorf("to the third event's time: revisions %v; want [0 1]", revs(got))
	}
	got, r := audit(t, url.Values{"from": {all[1].Time}, "to": {all[4].Time}, "limit": {"2"}})
	if fmt.Sprint(revs(got)) != "[1 2]" {
		t.Errorf("window [1, 4) limit 2: revisions %v; want [1 2]", revs(got))
	}
	link := r.Header.Get("Link")
	if !strings.Contains(link, "from=3") || !strings.Contains(link, "to=") {
		t.Fatalf("Link = %q; want the next page from revision 3 with to kept", link)
	}
	next := strings.TrimSuffix(strings.TrimPrefix(link, "<"+s.base), `>; rel="next"`)
	r = s.do("GET", next, a.Access, nil)
	wantStatus(t, r, http.StatusOK)
	var page2 []event
	r.JSON(t, &page2)
	if fmt.Sprint(revs(page2)) != "[3]" || r.Header.Get("Link") != "" {
		t.Errorf("next page: revisions %v, Link %q; want [3] and no Link", revs(page2), r.Header.Get("Link"))
	}
	for _, q := range []url.Values{
		{"from": {"yesterday"}}, {"to": {"2024-13-01T00:00:00Z"}}, {"to": {"12"}},
		{"from": {all[3].Time}, "to": {all[1].Time}},
	} {
		r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/?%s", room, q.Encode()), a.Access, nil)
		wantStatus(t, r, http.StatusBadRequest)
		var body map[string]json.RawMessage
		r.JSON(t, &body)
		if body["from"] == nil && body["to"] == nil {
			t.Errorf("%v: body %s; want a from or to field error", q, r.Body)
		}
	}
}
