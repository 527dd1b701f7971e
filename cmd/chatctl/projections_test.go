package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evchat/evchat/projections"
)

// TestProjectionsListPauseResume: list shows every projection with its
// checkpoint, lag and state; pause and resume change the state every
// process's projector honours; rebuild search rebuilds the index alone.
func TestProjectionsListPauseResume(t *testing.T) {
	m, db := server(t)
	base := m.URL()
	post(t, base+"/auth/register/", "", map[string]string{"username": "pia", "password": "password-pia"})
	tok := post(t, base+"/auth/login/", "", map[string]string{"username": "pia", "password": "password-pia"})["access"].(string)
	post(t, base+"/create-chatroom/", tok, map[string]any{"type": "group", "name": "ops"})
	post(t, base+"/send-message/", tok, map[string]any{"conversation_id": 1, "text": "indexed words"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	head, err := m.Store().Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SearchWatermark().Wait(ctx, head); err != nil {
		t.Fatal(err)
	}

	line := func(out, name string) string {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, name+" ") {
				return l
			}
		}
		t.Fatalf("no line for %s in:\n%s", name, out)
		return ""
	}
	list := func() string {
		t.Helper()
		out, errOut, code := chatctl(t, db, "projections", "list")
		if code != 0 {
			t.Fatalf("list exit %d: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "PROJECTION") || !strings.Contains(out, "STATE") {
			t.Fatalf("list has no header:\n%s", out)
		}
		return out
	}
	out := list()
	// The search projector has applied the log up to the head.
	search := line(out, "search")
	if !regexp.MustCompile(`^search\s+\S+-\S+\s+0\s+0s\s+(running|backfilling)\s`).MatchString(search) {
		t.Fatalf("search line = %q; want checkpoint, no lag, running (or marking it)", search)
	}
	line(out, "chat")

	if out, errOut, code := chatctl(t, db, "projections", "pause", "search"); code != 0 || !strings.Contains(out, "search paused") {
		t.Fatalf("pause exit %d\n%s%s", code, out, errOut)
	}
	post(t, base+"/send-message/", tok, map[string]any{"conversation_id": 1, "text": "while paused"})
	if got := line(list(), "search"); !regexp.MustCompile(`^search\s+\S+\s+1\s+\S+\s+paused\s`).MatchString(got) {
		t.Fatalf("search line while paused after one send = %q; want 1 event of lag, paused", got)
	}
	if out, errOut, code := chatctl(t, db, "projections", "resume", "search"); code != 0 || !strings.Contains(out, "search resumed") {
		t.Fatalf("resume exit %d\n%s%s", code, out, errOut)
	}
	if head, err = m.Store().Head(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.SearchWatermark().Wait(ctx, head); err != nil {
		t.Fatal(err)
	}
	if got := line(list(), "search"); !regexp.MustCompile(`^search\s+\S+\s+0\s+0s\s+running\s`).MatchString(got) {
		t.Fatalf("search line after resume = %q; want caught up and running", got)
	}

	t.Run("rebuild search", func(t *testing.T) {
		out, errOut, code := chatctl(t, db, "projections", "rebuild", "search")
		if code != 0 || !strings.Contains(out, "search projection is live") {
			t.Fatalf("rebuild search exit %d\n%s%s", code, out, errOut)
		}
		var n int
		if err := m.Pool().QueryRow(ctx, `SELECT count(*) FROM search.messages WHERE tsv @@ 'paused'::tsquery`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("rebuilt index holds %d rows matching 'paused' (%v); want 1", n, err)
		}
		if st, err := projections.ReadState(ctx, m.Pool(), projections.SearchName); err != nil || st.RebuildingSince != nil {
			t.Fatalf("state after the rebuild = %+v (%v); want not rebuilding", st, err)
		}
	})
	t.Run("status names both projectors", func(t *testing.T) {
		out, _, code := chatctl(t, db, "projections", "status")
		if code != 0 || !strings.Contains(out, "\nprojector: ") || !strings.Contains(out, "\nsearch projector: ") {
			t.Fatalf("status exit %d:\n%s", code, out)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"projections", "pause"}, {"projections", "pause", "nope"}, {"projections", "resume", "a", "b"},
			{"projections", "verify", "search"}, {"audit", "stream", "--from", "monday", "conversation-1"},
		} {
			if _, _, code := chatctl(t, db, args...); code != 2 {
				t.Errorf("chatctl %v exit %d; want 2", args, code)
			}
		}
	})
}

// TestAuditWindow: chatctl audit prints the events recorded from --from
// (inclusive) to --to (exclusive).
func TestAuditWindow(t *testing.T) {
	m, db := server(t)
	base := m.URL()
	post(t, base+"/auth/register/", "", map[string]string{"username": "ole", "password": "password-ole"})
	tok := post(t, base+"/auth/login/", "", map[string]string{"username": "ole", "password": "password-ole"})["access"].(string)
	post(t, base+"/create-chatroom/", tok, map[string]any{"type": "group", "name": "w"})
	for _, text := range []string{"one", "two", "three"} {
		post(t, base+"/send-message/", tok, map[string]any{"conversation_id": 1, "text": text})
	}
	out, _, code := chatctl(t, db, "audit", "stream", "--json", "conversation-1")
	if code != 0 {
		t.Fatalf("audit exit %d", code)
	}
	var times []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct{ Time string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		times = append(times, e.Time)
	}
	if len(times) != 4 {
		t.Fatalf("%d events; want 4", len(times))
	}
	count := func(args ...string) int {
		t.Helper()
		out, errOut, code := chatctl(t, db, append([]string{"audit"}, args...)...)
		if code != 0 {
			t.Fatalf("audit %v exit %d: %s", args, code, errOut)
		}
		return len(strings.Split(strings.TrimSpace(out), "\n"))
	}
	if n := count("stream", "--from", times[1], "--to", times[3], "conversation-1"); n != 2 {
		t.Errorf("stream window [1, 3): %d events; want 2", n)
	}
	if n := count("stream", "--from", times[2], "conversation-1"); n != 2 {
		t.Errorf("stream from the third: %d events; want 2", n)
	}
	if n := count("user", "1", "--to", times[1]); n != 3 {
		t.Errorf("user 1 before the first message: %d events; want reservation, registration, room", n)
	}
}
