package chatd_test

import (
	"testing"

	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/internal/chatd"
)

// socketEvents hears each socket take its slot (registered) and end, by
// user. A socket's handshake answers before it registers, so a test that
// counts slots waits for the registration of each socket it opened.
func socketEvents(c *chatd.Config) (registered, ended chan int64) {
	registered, ended = make(chan int64, 100), make(chan int64, 100)
	c.Hooks.SocketHook = func(p chathttp.SocketPoint, user, _ int64) {
		switch p {
		case chathttp.SocketRegistered:
			registered <- user
		case chathttp.SocketEnded:
			ended <- user
		}
	}
	return registered, ended
}

// TestWSSocketsPerUserCapped: the 17th socket of one user (default cap 16)
// is closed with 1008 "too many sockets" right after the upgrade; the 16
// others keep receiving; closing one frees a slot for the next.
func TestWSSocketsPerUserCapped(t *testing.T) {
	t.Parallel()
	var registered, ended chan int64
	s := startServer(t, func(c *chatd.Config) { registered, ended = socketEvents(c) })
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	var sockets []*wsConn
	for range chatd.DefaultConfig().SocketsPerUser {
		sockets = append(sockets, s.wsConnect(b, room, ""))
		<-registered
	}
	extra := s.wsConnect(b, room, "")
	extra.expectClose(t, 1008)
	if u := <-ended; u != b.ID {
		t.Fatalf("socket of user %d ended; want the refused one of %d", u, b.ID)
	}

	other := s.wsConnect(a, room, "") // another user is not capped by b's sockets
	id := s.send(a, room, "still here")
	for _, so := range append(sockets, other) {
		so.expectMessage(t, id)
	}

	_ = sockets[0].conn.Close()
	if u := <-ended; u != b.ID {
		t.Fatalf("socket of user %d ended; want b's (%d)", u, b.ID)
	}
	again := s.wsConnect(b, room, "")
	id = s.send(a, room, "after one closed")
	again.expectMessage(t, id)
	for _, so := range sockets[1:] {
		so.expectMessage(t, id)
	}
}

// TestWSSocketsPerProcessCapped: past the process's cap the next socket is
// closed with 1013 "too many sockets on this server", whoever opens it.
func TestWSSocketsPerProcessCapped(t *testing.T) {
	t.Parallel()
	var registered, ended chan int64
	s := startServer(t, func(c *chatd.Config) { c.SocketsMax = 3; registered, ended = socketEvents(c) })
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	first := s.wsConnect(a, room, "")
	<-registered
	s.wsConnect(a, room, "")
	<-registered
	s.wsConnect(b, room, "")
	<-registered
	refused := s.wsConnect(b, room, "")
	refused.expectClose(t, 1013)
	<-ended
	_ = first.conn.Close()
	<-ended
	so := s.wsConnect(b, room, "")
	so.expectMessage(t, s.send(a, room, "room again"))
}
