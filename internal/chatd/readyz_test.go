package chatd_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
)

// /readyz answers 503 while the read model lags the log beyond the bound,
// and 200 again once the projector catches up.
func TestReadyzReportsProjectionLag(t *testing.T) {
	t.Parallel()
	var stalled atomic.Bool
	s := startServer(t, func(c *chatd.Config) {
		c.ReadyLag = 300 * time.Millisecond
		c.ProjectionWait = 100 * time.Millisecond
		c.Hooks.ProjectorBeforeCommit = func(context.Context) error {
			if stalled.Load() {
				return errors.New("stalled by the test")
			}
			return nil
		}
	})
	u := s.newUser()
	room := s.room(u)
	if r := s.do("GET", "/readyz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("readyz before the stall = %d %s", r.Status, r.Body)
	}
	stalled.Store(true)
	s.send(u, room, "not projected yet")
	waitFor(t, 10*time.Second, "readyz to report the lag", func() bool {
		r := s.do("GET", "/readyz", "", nil)
		return r.Status == http.StatusServiceUnavailable && strings.Contains(string(r.Body), "lagging")
	})
	stalled.Store(false)
	waitFor(t, 15*time.Second, "readyz to recover", func() bool {
		return s.do("GET", "/readyz", "", nil).Status == http.StatusOK
	})
}

// waitFor polls cond until it holds or the time is up (for states no
// signal announces).
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A retried send answers 201 with the first message even while the read
// model has not caught up with it: from the log.
func TestKeyedRetryWhileTheReadModelLags(t *testing.T) {
	t.Parallel()
	var stalled atomic.Bool
	s := startServer(t, func(c *chatd.Config) {
		c.ProjectionWait = 100 * time.Millisecond
		c.Hooks.ProjectorBeforeCommit = func(context.Context) error {
			if stalled.Load() {
				return errors.New("stalled by the test")
			}
			return nil
		}
	})
	u := s.newUser()
	room := s.room(u)
	stalled.Store(true)
	body := map[string]any{"conversation_id": room, "text": "sent while the read model stalls"}
	first := s.sendJSON(t, u, body, "Idempotency-Key", "stalled-1")
	again := s.sendJSON(t, u, body, "Idempotency-Key", "stalled-1")
	if again.ID != first.ID || again.Text != first.Text || again.CreatedAt != first.CreatedAt {
		t.Fatalf("retry = %+v; want the first message %+v", again, first)
	}
	stalled.Store(false)
}
