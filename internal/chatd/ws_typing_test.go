package chatd_test

import (
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/clocktest"
)

// TestWSTypingLimitedPerUser: a member typing from every socket they may
// open reaches another member's socket as one notice per interval (on a
// manual clock), and that socket stays open.
func TestWSTypingLimitedPerUser(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := startServer(t, func(c *chatd.Config) { c.Hooks.Clock = clock })
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b, c)
	var typists []*wsConn
	for range chatd.DefaultConfig().SocketsPerUser {
		typists = append(typists, s.wsConnect(a, room, ""))
	}
	peer, marker := s.wsConnect(b, room, ""), s.wsConnect(c, room, "")
	for round := range 2 {
		for range 3 {
			for _, so := range typists {
				so.write(t, `{"type": "typing"}`)
			}
		}
		// Each socket's frames are handled in order: once the message sent
		// over each typist socket arrives, all their typing notices were
		// published; c's notice, published after, arrives after them.
		for _, so := range typists {
			so.write(t, map[string]any{"type": "message", "text": "after typing"})
		}
		typing, messages := 0, 0
		for messages < len(typists) {
			switch f := peer.next(t); f.Type {
			case "typing":
				typing++
			case "message":
				messages++
			default:
				t.Fatalf("round %d: frame %s; want typing or message", round, f.Raw)
			}
		}
		marker.write(t, `{"type": "typing"}`)
		for {
			f := peer.expect(t, "typing")
			if f.Sender == c.ID {
				break
			}
			typing++
		}
		if typing != 1 {
			t.Fatalf("round %d: %d typing notices of %d sockets typing 3 times each; want 1", round, typing, len(typists))
		}
		clock.Advance(chatd.DefaultConfig().TypingInterval)
	}
}
