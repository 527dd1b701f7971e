package chatd_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWSOriginNeedsSameScheme: the login cookie counts only with an Origin
// of the same scheme and host: an https:// page of the host is another
// origin than this http:// server, and so is an http:// page for an https
// one.
func TestWSOriginNeedsSameScheme(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	cookie := s.wsLoginCookie(a)
	for _, tt := range []struct {
		origin string
		want   int
	}{
		{"http://" + s.Addr(), http.StatusSwitchingProtocols},
		{"HTTP://" + s.Addr(), http.StatusSwitchingProtocols},
		{"https://" + s.Addr(), http.StatusUnauthorized},
		{"ws://" + s.Addr(), http.StatusUnauthorized},
		{"null", http.StatusUnauthorized},
	} {
		conn, status, err := s.wsDial(nil, room, "", http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}, "Origin": {tt.origin}})
		if conn != nil {
			_ = conn.Close()
		}
		if status != tt.want {
			t.Errorf("Origin %s: status %d (%v); want %d", tt.origin, status, err, tt.want)
		}
	}
}

// TestWSBinaryFrameGetsAnError: a binary frame gets an error frame and the
// socket stays open.
func TestWSBinaryFrameGetsAnError(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	so := s.wsConnect(a, room, "")
	_ = so.conn.SetWriteDeadline(time.Now().Add(wsWait))
	if err := so.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type": "typing"}`)); err != nil {
		t.Fatal(err)
	}
	if f := so.expect(t, "error"); f.Detail == "" {
		t.Fatalf("error frame %s; want a detail", f.Raw)
	}
	so.expectMessage(t, s.send(b, room, "still open"))
}

// TestWSInvalidUTF8Closes: a text frame that is not UTF-8 closes the
// socket with 1007.
func TestWSInvalidUTF8Closes(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	so := s.wsConnect(a, room, "")
	so.write(t, "{\"type\": \"message\", \"text\": \"\xff\xfe\"}")
	so.expectClose(t, 1007)
	r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil)
	var msgs []any
	if r.JSON(t, &msgs); r.Status != http.StatusOK || len(msgs) != 0 {
		t.Fatalf("messages = %d %s; want none stored", r.Status, r.Body)
	}
}
