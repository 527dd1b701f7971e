package chatd_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/clocktest"
)

// TestWSTokenExpiry: on a manual clock, a socket closes with 4001 when its
// access token expires; an in-band auth frame with a fresh token of its
// user extends it to that token's expiry; an invalid token gets an error
// frame and changes nothing; a token of another user closes it with 1008.
func TestWSTokenExpiry(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(time.Now().UTC().Truncate(time.Second))
	s := startServer(t, func(c *chatd.Config) { c.Hooks.Clock = clock })
	ttl := chatd.DefaultConfig().AccessTTL
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	// opened waits for the socket's expiry timer: the socket has started.
	opened := func(s *testServer, u user) *wsConn {
		t.Helper()
		n := clock.Armed()
		so := s.wsConnect(u, room, "")
		clock.WaitArmed(n + 1)
		return so
	}

	t.Run("expires", func(t *testing.T) {
		s := s.wsFor(t)
		so := opened(s, b)
		clock.Advance(ttl)
		so.expectClose(t, 4001)
	})

	t.Run("extended in-band", func(t *testing.T) {
		s := s.wsFor(t)
		b := s.login(b) // a token issued now
		so := opened(s, b)
		clock.Advance(ttl / 2)
		fresh := s.login(b) // expires half a lifetime after so's
		so.write(t, map[string]any{"type": "auth", "token": "not a token"})
		if f := so.expect(t, "error"); f.Detail == "" {
			t.Fatalf("error frame %s; want a detail", f.Raw)
		}
		so.write(t, map[string]any{"type": "auth", "token": fresh.Access})
		ack := so.expect(t, "auth")
		var body struct {
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(ack.Raw, &body); err != nil || !body.ExpiresAt.Equal(clock.Now().Add(ttl)) {
			t.Fatalf("auth frame %s; want expires_at %s", ack.Raw, clock.Now().Add(ttl))
		}
		clock.Advance(ttl / 2) // the first token's expiry: still open
		so.expectMessage(t, s.send(s.login(a), room, "still open"))
		clock.Advance(ttl / 2)
		so.expectClose(t, 4001)
	})

	t.Run("token of another user", func(t *testing.T) {
		s := s.wsFor(t)
		b := s.login(b)
		a := s.login(a)
		so := opened(s, b)
		so.write(t, map[string]any{"type": "auth", "token": a.Access})
		so.expectClose(t, 1008)
	})
}
