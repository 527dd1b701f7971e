package chatd_test

// The audit endpoint streams a room's events page by page.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/internal/chatd"
)

func TestAuditStreamsPages(t *testing.T) {
	t.Parallel()
	// Three events a read: every answer below spans several reads.
	s := startServer(t, func(c *chatd.Config) { c.Hooks.AuditPage = 3 })
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	wantTexts := []string{}
	for i := range 10 {
		wantTexts = append(wantTexts, fmt.Sprintf("m%d", i))
		s.send(a, room, wantTexts[i])
	}
	// ConversationCreated and 10 MessageSent: 11 events.

	type event struct {
		Type     string          `json:"type"`
		Revision uint64          `json:"revision"`
		Data     json.RawMessage `json:"data"`
	}
	audit := func(t *testing.T, query string) ([]event, response) {
		t.Helper()
		r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/%s", room, query), b.Access, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("audit%s: %d %s", query, r.Status, r.Body)
		}
		if !json.Valid(r.Body) {
			t.Fatalf("audit%s body is not valid JSON: %s", query, r.Body)
		}
		var out []event
		r.JSON(t, &out)
		return out, r
	}

	t.Run("all of it, in order", func(t *testing.T) {
		got, r := audit(t, "")
		if len(got) != 11 {
			t.Fatalf("%d events; want 11", len(got))
		}
		var texts []string
		for i, e := range got {
			if e.Revision != uint64(i) {
				t.Fatalf("event %d has revision %d; want %d", i, e.Revision, i)
			}
			if e.Type == domain.TypeMessageSent {
				var d struct{ Text string }
				_ = json.Unmarshal(e.Data, &d)
				texts = append(texts, d.Text)
			}
		}
		if strings.Join(texts, ",") != strings.Join(wantTexts, ",") {
			t.Fatalf("texts %v; want %v", texts, wantTexts)
		}
		if l := r.Header.Get("Link"); l != "" {
			t.Fatalf("Link %q on the whole stream; want none", l)
		}
	})

	t.Run("a limit links the rest", func(t *testing.T) {
		var revs []uint64
		query := "?limit=5"
		for range 5 {
			got, r := audit(t, query)
			for _, e := range got {
				revs = append(revs, e.Revision)
			}
			l := s.links(t, r)["next"]
			if l == "" {
				break
			}
			query = strings.TrimPrefix(l, fmt.Sprintf("/audit/conversations/%d/", room))
		}
		if fmt.Sprint(revs) != "[0 1 2 3 4 5 6 7 8 9 10]" {
			t.Fatalf("revisions walked %v; want 0 to 10 once each", revs)
		}
	})

	t.Run("an exact page has no next link", func(t *testing.T) {
		got, r := audit(t, "?from=5&limit=6")
		if len(got) != 6 || got[0].Revision != 5 || r.Header.Get("Link") != "" {
			t.Fatalf("%d events, Link %q; want 6 from revision 5 and no link", len(got), r.Header.Get("Link"))
		}
		if got, _ := audit(t, "?from=11"); len(got) != 0 {
			t.Fatalf("%d events past the end; want none", len(got))
		}
	})
}
