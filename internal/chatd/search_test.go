package chatd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

// searchHit is a /search/ result as the tests read it.
type searchHit struct {
	ID           int64  `json:"id"`
	Conversation int64  `json:"conversation"`
	Text         string `json:"text"`
	Highlight    string `json:"highlight"`
}

// search asks /search/ for q as u and returns the hits and the response.
func (s *testServer) search(u user, q string, extra ...string) ([]searchHit, response) {
	s.t.Helper()
	v := url.Values{"q": {q}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	r := s.do("GET", "/search/?"+v.Encode(), u.Access, nil)
	wantStatus(s.t, r, http.StatusOK)
	var hits []searchHit
	r.JSON(s.t, &hits)
	return hits, r
}

func hitIDs(hits []searchHit) []int64 {
	ids := make([]int64, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	return ids
}

// appendEvent appends e as the log would hold it. The lifecycle commands
// (edit, delete) are built elsewhere; their events are appended here
// directly, to a stream of their own so the rooms' write side is not
// disturbed: projections follow the log by event type, whatever the stream.
func (s *testServer) appendEvent(e domain.Event) eventstore.Position {
	s.t.Helper()
	reg := domain.NewRegistry()
	typ, data, err := reg.Encode(e)
	if err != nil {
		s.t.Fatal(err)
	}
	md, _ := json.Marshal(domain.Metadata{RequestID: "test", Time: time.Now(), Version: reg.Version(typ)})
	r, err := s.Store().Append(context.Background(), "searchtest-"+uuid.NewString(), eventstore.NoStream(),
		eventstore.EventData{ID: uuid.New(), Type: typ, Data: data, Metadata: md})
	if err != nil {
		s.t.Fatal(err)
	}
	return r.Position
}

// searchCaughtUp waits until the search index has projected the log as it is now.
func (s *testServer) searchCaughtUp() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	head, err := s.Store().Head(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.SearchWatermark().Wait(ctx, head); err != nil {
		s.t.Fatalf("search index did not reach the log head %s: %v", head, err)
	}
}

// TestSearch: a word sent a moment ago is found (read-your-writes), with
// the match highlighted and the rest escaped; an edited message is found
// by its new text and not its old; a deleted one is not found; only the
// caller's rooms are searched; results page back newest first with a Link.
func TestSearch(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	ab := s.room(a, b)
	bc := s.room(b, c)

	sent := s.send(a, ab, "Meet me at the <lighthouse> & bring snacks")
	hits, _ := s.search(b, "lighthouse")
	if len(hits) != 1 || hits[0].ID != sent {
		t.Fatalf("search right after the send = %+v; want message %d", hits, sent)
	}
	if want := "Meet me at the &lt;<b>lighthouse</b>&gt; &amp; bring snacks"; hits[0].Highlight != want {
		t.Errorf("highlight = %q; want %q", hits[0].Highlight, want)
	}
	if hits[0].Conversation != ab || hits[0].Text != "Meet me at the <lighthouse> & bring snacks" {
		t.Errorf("hit = %+v; want the message object", hits[0])
	}

	t.Run("only the caller's rooms", func(t *testing.T) {
		other := s.send(b, bc, "the lighthouse keeper")
		if hits, _ := s.search(c, "lighthouse"); len(hits) != 1 || hits[0].ID != other {
			t.Fatalf("c's search = %v; want only %d (c is not in room %d)", hitIDs(hits), other, ab)
		}
		if hits, _ := s.search(b, "lighthouse"); fmt.Sprint(hitIDs(hits)) != fmt.Sprint([]int64{other, sent}) {
			t.Fatalf("b's search = %v; want [%d %d], newest first", hitIDs(hits), other, sent)
		}
		// Membership is now: after leaving, the room's messages are gone.
		wantStatus(t, s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", bc), c.Access, nil), http.StatusOK)
		if hits, _ := s.search(c, "lighthouse"); len(hits) != 0 {
			t.Fatalf("search after leaving = %v; want none", hitIDs(hits))
		}
	})

	t.Run("edit and delete", func(t *testing.T) {
		edited := s.send(a, ab, "original wording kumquat")
		deleted := s.send(a, ab, "soon gone persimmon")
		s.appendEvent(domain.MessageEdited{ConversationID: ab, MessageID: edited, EditorID: a.ID, Text: "revised wording tangerine"})
		s.appendEvent(domain.MessageDeleted{ConversationID: ab, MessageID: deleted, DeletedBy: a.ID})
		s.searchCaughtUp()
		if hits, _ := s.search(a, "kumquat"); len(hits) != 0 {
			t.Errorf("old text of an edited message found: %v", hitIDs(hits))
		}
		hits, _ := s.search(a, "tangerine")
		if len(hits) != 1 || hits[0].ID != edited || !strings.Contains(hits[0].Highlight, "<b>tangerine</b>") {
			t.Errorf("new text of an edited message: %+v; want message %d highlighted", hits, edited)
		}
		if hits, _ := s.search(a, "persimmon"); len(hits) != 0 {
			t.Errorf("deleted message found: %v", hitIDs(hits))
		}
	})

	t.Run("paging", func(t *testing.T) {
		var ids []int64
		for i := range 5 {
			ids = append(ids, s.send(b, ab, fmt.Sprintf("walrus number %d", i)))
		}
		var got []int64
		path := "/search/?q=walrus&limit=2"
		for pages := 0; path != ""; pages++ {
			if pages > 3 {
				t.Fatalf("more than 3 pages of 2 for 5 hits")
			}
			r := s.do("GET", path, a.Access, nil)
			wantStatus(t, r, http.StatusOK)
			var hits []searchHit
			r.JSON(t, &hits)
			got = append(got, hitIDs(hits)...)
			path = ""
			if link := r.Header.Get("Link"); link != "" {
				next := strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
				path = strings.TrimPrefix(next, s.base)
			}
		}
		want := []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("paged results = %v; want %v", got, want)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, q := range []string{"/search/", "/search/?q=", "/search/?q=%20%20"} {
			r := s.do("GET", q, a.Access, nil)
			wantStatus(t, r, http.StatusBadRequest)
			if _, ok := r.Map(t)["q"]; !ok {
				t.Errorf("%s: body %s; want a q field error", q, r.Body)
			}
		}
		r := s.do("GET", "/search/?q=x&before=999999", a.Access, nil)
		wantStatus(t, r, http.StatusBadRequest)
		r = s.do("GET", "/search/?q=x&limit=0", a.Access, nil)
		wantStatus(t, r, http.StatusBadRequest)
		wantStatus(t, s.do("GET", "/search/?q=x", "", nil), http.StatusUnauthorized)
	})
}

// TestSearchBackfill: a server that adds the search index to a log it did
// not index (it ran with search off) answers chat requests while the index
// is backfilled, and the index ends complete.
func TestSearchBackfill(t *testing.T) {
	t.Parallel()
	cfg := chatd.Config{
		Addr: "127.0.0.1:0", DatabaseURL: pgtest.NewDatabase(t), DataDir: t.TempDir(),
		BcryptCost: 4, LeaderRetry: 100 * time.Millisecond, SearchOff: true,
	}
	useEventStore(t, &cfg)
	first := startWith(t, cfg)
	a, b := first.newUser(), first.newUser()
	room := first.room(a, b)
	var sent []int64
	for i := range 20 {
		sent = append(sent, first.send(a, room, fmt.Sprintf("archived narwhal %d", i)))
	}
	wantStatus(t, first.do("GET", "/search/?q=narwhal", a.Access, nil), http.StatusServiceUnavailable)
	first.stop()

	// The first search batch waits inside its transaction until the test
	// has been served a chat request.
	inBatch := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	cfg.SearchOff = false
	cfg.Hooks.SearchBeforeCommit = func(ctx context.Context) error {
		once.Do(func() { close(inBatch) })
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	second := startWith(t, cfg)
	<-inBatch
	a, b = second.login(a), second.login(b)
	msg := second.send(b, room, "live while backfilling")
	r := second.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), a.Access, nil)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), "live while backfilling") {
		t.Fatalf("list during the backfill lacks message %d: %s", msg, r.Body)
	}
	ctx := context.Background()
	head, err := second.Store().Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := projections.ReadCheckpoint(ctx, second.Pool(), migrations.Search, projections.SearchName)
	if err != nil {
		t.Fatal(err)
	}
	if !cp.Less(head) {
		t.Fatalf("search checkpoint %s is not behind the head %s while its batch is held", cp, head)
	}
	st, err := projections.ReadState(ctx, second.Pool(), projections.SearchName)
	if err != nil || st.Name() != projections.StateBackfilling {
		t.Errorf("search state = %q (%v); want backfilling", st.Name(), err)
	}
	close(release)
	second.searchCaughtUp()
	hits, _ := second.search(a, "narwhal", "limit", "200")
	if len(hits) != len(sent) {
		t.Fatalf("after the backfill %d hits; want %d", len(hits), len(sent))
	}
	if hits, _ := second.search(a, "backfilling"); len(hits) != 1 || hits[0].ID != msg {
		t.Fatalf("message sent during the backfill: %v; want [%d]", hitIDs(hits), msg)
	}
}
