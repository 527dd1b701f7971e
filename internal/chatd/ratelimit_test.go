package chatd_test

// Request rate limits: registrations per address, sends and read receipts
// per user over REST and WebSocket, on an injected clock.

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/clocktest"
	"github.com/evchat/evchat/internal/ratelimit"
)

// newTestClock is a clock a test moves by hand.
func newTestClock() *clocktest.Clock { return clocktest.New(time.Unix(1_800_000_000, 0)) }

func wantThrottled(t testing.TB, r response, retryAfter string) {
	t.Helper()
	wantDetail(t, r, http.StatusTooManyRequests, "Request was throttled. Expected available in "+retryAfter+" seconds.")
	if got := r.Header.Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After = %q; want %q", got, retryAfter)
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := startServer(t, func(c *chatd.Config) {
		c.Hooks.Now = clock.Now
		c.RegisterRate = ratelimit.Limit{Rate: 1.0 / 3600, Burst: 3}
		c.SendRate = ratelimit.Limit{Rate: 1, Burst: 2}
		c.ReadRate = ratelimit.Limit{Rate: 1, Burst: 2}
	})
	a, b := s.newUser(), s.newUser() // two of the address's three registrations
	room, own := s.room(a, b), s.room(a)

	t.Run("register per address", func(t *testing.T) {
		reg := func(name string) response {
			return s.callJSON(t, "POST", "/auth/register/", "", map[string]string{"username": name, "password": "correct-horse-1"})
		}
		wantStatus(t, reg(fmt.Sprintf("third_%d", a.ID)), http.StatusCreated)
		name := fmt.Sprintf("fourth_%d", a.ID)
		wantThrottled(t, reg(name), "3600")
		clock.Advance(time.Hour)
		// Nothing was stored: the name is still free.
		wantStatus(t, reg(name), http.StatusCreated)
	})

	t.Run("sends per user over REST and WebSocket", func(t *testing.T) {
		for i := range 2 {
			s.send(a, room, fmt.Sprintf("burst %d", i))
		}
		wantThrottled(t, s.callJSON(t, "POST", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "one too many"}), "1")
		// b has a bucket of its own.
		s.send(b, room, "from b")

		ws := s.wsFor(t).wsConnect(a, own, "")
		ws.write(t, map[string]any{"type": "message", "text": "over the socket"})
		if f := ws.expect(t, "error"); f.Detail != "Request was throttled. Expected available in 1 seconds." {
			t.Fatalf("error frame %s; want the throttled detail", f.Raw)
		}
		if got, _ := s.conversationMessages(t, a, own, ""); len(got) != 0 {
			t.Fatalf("%d messages in a's own room; want none stored", len(got))
		}
		if got, _ := s.conversationMessages(t, a, room, ""); len(got) != 3 {
			t.Fatalf("%d messages in the shared room; want 3", len(got))
		}
		clock.Advance(time.Second)
		// The socket stayed open and sends again once a token is back.
		ws.write(t, map[string]any{"type": "message", "text": "later"})
		if f := ws.expect(t, "message"); f.Text != "later" {
			t.Fatalf("frame %s; want the message", f.Raw)
		}
	})

	t.Run("read receipts per user over REST and WebSocket", func(t *testing.T) {
		id := s.send(b, room, "read me")
		read := func() response {
			return s.callJSON(t, "POST", "/read-message/", a.Access, map[string]any{"conversation_id": room, "message_ids": []int64{id}})
		}
		wantStatus(t, read(), http.StatusOK)
		wantStatus(t, read(), http.StatusOK)
		wantThrottled(t, read(), "1")
		ws := s.wsFor(t).wsConnect(a, own, "")
		ws.write(t, map[string]any{"type": "read", "message_ids": []int64{id}})
		if f := ws.expect(t, "error"); f.Detail != "Request was throttled. Expected available in 1 seconds." {
			t.Fatalf("error frame %s; want the throttled detail", f.Raw)
		}
		clock.Advance(time.Second)
		wantStatus(t, read(), http.StatusOK)
	})
}
