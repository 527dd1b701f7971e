package chatd_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/chatd"
)

// wsWait bounds every wait for a frame the test expects: a missing frame
// fails the test instead of hanging it.
const wsWait = 10 * time.Second

var wsDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// wsFor returns s reporting to t (a subtest): the harness's helpers fail the
// test that started the server.
func (s *testServer) wsFor(t testing.TB) *testServer {
	c := *s
	c.t = t
	return &c
}

// wsURL is the WebSocket URL of a room, with an optional raw query.
func (s *testServer) wsURL(room int64, query string) string {
	u := "ws" + strings.TrimPrefix(s.base, "http") + fmt.Sprintf("/ws/chat/%d/", room)
	if query != "" {
		u += "?" + query
	}
	return u
}

// wsDial opens a WebSocket to room with the given dialer (nil: the default)
// and returns the handshake status whether or not the upgrade succeeded.
func (s *testServer) wsDial(d *websocket.Dialer, room int64, query string, header http.Header) (*websocket.Conn, int, error) {
	if d == nil {
		d = wsDialer
	}
	conn, resp, err := d.Dial(s.wsURL(room, query), header)
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if err != nil {
			_ = resp.Body.Close()
		}
	}
	return conn, status, err
}

// wsConnect opens a socket to room as u (Bearer header); query is an optional
// raw query such as "since=...". The socket is closed when the test ends.
func (s *testServer) wsConnect(u user, room int64, query string) *wsConn {
	s.t.Helper()
	return s.wsConnectWith(nil, u, room, query)
}

func (s *testServer) wsConnectWith(d *websocket.Dialer, u user, room int64, query string) *wsConn {
	s.t.Helper()
	conn, status, err := s.wsDial(d, room, query, http.Header{"Authorization": {"Bearer " + u.Access}})
	if err != nil {
		s.t.Fatalf("open socket to room %d as user %d: %v (status %d)", room, u.ID, err, status)
	}
	s.t.Cleanup(func() { _ = conn.Close() })
	return &wsConn{conn: conn}
}

// wsConn is a test client socket. Only the test goroutine reads it.
type wsConn struct {
	conn *websocket.Conn
}

// wsFrame is a server frame; Raw is the frame as received.
type wsFrame struct {
	Type         string  `json:"type"`
	Position     string  `json:"position"`
	ID           int64   `json:"id"`
	Conversation int64   `json:"conversation"`
	Sender       int64   `json:"sender"`
	Text         string  `json:"text"`
	Reader       int64   `json:"reader"`
	MessageIDs   []int64 `json:"message_ids"`
	User         int64   `json:"user"`
	IsTyping     *bool   `json:"is_typing"`
	Detail       string  `json:"detail"`
	Raw          []byte  `json:"-"`
}

// next reads the next frame.
func (c *wsConn) next(t testing.TB) wsFrame {
	t.Helper()
	return c.nextWithin(t, wsWait)
}

// nextWithin reads the next frame, failing the test if none comes within d.
func (c *wsConn) nextWithin(t testing.TB, d time.Duration) wsFrame {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	typ, b, err := c.conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("got frame type %d; want a text frame", typ)
	}
	var f wsFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s is not a JSON object: %v", b, err)
	}
	f.Raw = b
	return f
}

// expect reads the next frame and checks its type.
func (c *wsConn) expect(t testing.TB, typ string) wsFrame {
	t.Helper()
	f := c.next(t)
	if f.Type != typ {
		t.Fatalf("got frame %s; want a %q frame", f.Raw, typ)
	}
	return f
}

// expectMessage reads the next frame and checks it is message id.
func (c *wsConn) expectMessage(t testing.TB, id int64) wsFrame {
	t.Helper()
	f := c.next(t)
	if f.Type != "message" || f.ID != id {
		t.Fatalf("got frame %s; want message %d", f.Raw, id)
	}
	return f
}

// write sends a client frame: a string as is, anything else as JSON.
func (c *wsConn) write(t testing.TB, v any) {
	t.Helper()
	b, ok := v.(string)
	if !ok {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b = string(j)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(wsWait))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(b)); err != nil {
		t.Fatalf("write frame %s: %v", b, err)
	}
}

// expectClose reads the next frame and checks that it is the server's close
// with code.
func (c *wsConn) expectClose(t testing.TB, code int) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wsWait))
	_, b, err := c.conn.ReadMessage()
	if err == nil {
		t.Fatalf("got frame %s; want the socket closed with code %d", b, code)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v; want the socket closed with code %d", err, code)
	}
	if ce.Code != code {
		t.Fatalf("got close code %d (%q); want %d", ce.Code, ce.Text, code)
	}
}

// wsPosition parses a frame's position; positions are opaque to clients, but
// the test may order them.
func wsPosition(t testing.TB, f wsFrame) eventstore.Position {
	t.Helper()
	p, err := eventstore.ParsePosition(f.Position)
	if err != nil {
		t.Fatalf("frame %s: position %q: %v", f.Raw, f.Position, err)
	}
	return p
}

// wsKeys returns the sorted keys of a JSON object.
func wsKeys(t testing.TB, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", raw, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func wsSorted(keys ...string) []string {
	slices.Sort(keys)
	return keys
}

// wsLoginCookie logs u in and returns the chat_access cookie login set.
func (s *testServer) wsLoginCookie(u user) *http.Cookie {
	s.t.Helper()
	r := s.do("POST", "/auth/login/", "", map[string]string{"username": u.Name, "password": u.Password})
	if r.Status != http.StatusOK {
		s.t.Fatalf("login %s: %d %s", u.Name, r.Status, r.Body)
	}
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == "chat_access" {
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				s.t.Errorf("chat_access cookie: HttpOnly=%v SameSite=%v; want HttpOnly and SameSite=Strict", ck.HttpOnly, ck.SameSite)
			}
			return ck
		}
	}
	s.t.Fatalf("login set no chat_access cookie; Set-Cookie = %q", r.Header.Values("Set-Cookie"))
	return nil
}

// wsSendPicture sends a message with a picture over multipart and returns the
// message object of the response.
func (s *testServer) wsSendPicture(u user, room int64, text string) []byte {
	s.t.Helper()
	r := s.callMultipart(s.t, "/send-message/", u, []formPart{
		{name: "conversation_id", value: fmt.Sprint(room)}, {name: "text", value: text},
		{name: "attachment_picture", file: "dot.png", value: "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 64)},
	})
	wantStatus(s.t, r, http.StatusCreated)
	return r.Body
}

func TestWSHandshake(t *testing.T) {
	t.Parallel()
	const appOrigin = "https://app.example"
	s := startServer(t, func(c *chatd.Config) { c.Origins = []string{appOrigin} })
	a, b, stranger := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)
	cookie := s.wsLoginCookie(a)
	self := "http://" + s.Addr()
	withCookie := func(origin string) http.Header {
		h := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}
	tests := []struct {
		name   string
		room   int64
		query  string
		header http.Header
		want   int
	}{
		{"no credentials", room, "", nil, http.StatusUnauthorized},
		{"bad bearer token", room, "", http.Header{"Authorization": {"Bearer not-a-token"}}, http.StatusUnauthorized},
		{"not a bearer header", room, "", http.Header{"Authorization": {"Basic " + a.Access}}, http.StatusUnauthorized},
		{"bad query token", room, "token=not-a-token", nil, http.StatusUnauthorized},
		{"bad cookie", room, "", http.Header{"Cookie": {"chat_access=not-a-token"}, "Origin": {self}}, http.StatusUnauthorized},
		{"refresh token as access", room, "token=" + url.QueryEscape(a.Refresh), nil, http.StatusUnauthorized},
		{"not a member", room, "", http.Header{"Authorization": {"Bearer " + stranger.Access}}, http.StatusForbidden},
		{"no such room", room + 1000, "", http.Header{"Authorization": {"Bearer " + a.Access}}, http.StatusNotFound},
		{"bearer header", room, "", http.Header{"Authorization": {"Bearer " + a.Access}}, http.StatusSwitchingProtocols},
		{"query token", room, "token=" + url.QueryEscape(b.Access), nil, http.StatusSwitchingProtocols},
		{"cookie with same-host origin", room, "", withCookie(self), http.StatusSwitchingProtocols},
		{"cookie with configured origin", room, "", withCookie(appOrigin), http.StatusSwitchingProtocols},
		// Without an allowed Origin the cookie is no credential at all.
		{"cookie with foreign origin", room, "", withCookie("https://evil.example"), http.StatusUnauthorized},
		{"cookie without origin", room, "", withCookie(""), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s.wsFor(t)
			conn, status, err := s.wsDial(nil, tt.room, tt.query, tt.header)
			if conn != nil {
				defer conn.Close()
			}
			if status != tt.want {
				t.Fatalf("got status %d (err %v); want %d", status, err, tt.want)
			}
			if tt.want != http.StatusSwitchingProtocols {
				return
			}
			// A working socket: it hears a message of the room.
			c := &wsConn{conn: conn}
			id := s.send(a, tt.room, "hello "+tt.name)
			c.expectMessage(t, id)
		})
	}

	t.Run("authentication comes before the room", func(t *testing.T) {
		_, r, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/ws/chat/abc/", nil)
		if err == nil || r == nil || r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unauthenticated dial of /ws/chat/abc/: %v, %v; want 401", r, err)
		}
	})
	t.Run("not an upgrade", func(t *testing.T) {
		r := s.do("GET", fmt.Sprintf("/ws/chat/%d/", room), a.Access, nil)
		wantDetail(t, r, http.StatusBadRequest, "Expected a WebSocket upgrade request.")
	})
}

// TestWSFrames checks every server frame of API.md section 6 on the sockets
// of two members.
func TestWSFrames(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)
	sa, sb := s.wsConnect(a, room, ""), s.wsConnect(b, room, "")
	sockets := []*wsConn{sa, sb}
	last := make([]eventstore.Position, len(sockets))

	// logFrame reads the next frame of every socket, checks that it is the
	// same frame everywhere with the wanted keys and a position after the
	// socket's previous one, and returns it.
	logFrame := func(t testing.TB, typ string, keys ...string) wsFrame {
		t.Helper()
		var first wsFrame
		for i, so := range sockets {
			f := so.expect(t, typ)
			if got, want := wsKeys(t, f.Raw), wsSorted(keys...); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s frame keys = %v; want %v", typ, got, want)
			}
			p := wsPosition(t, f)
			if !last[i].Less(p) {
				t.Fatalf("socket %d: position %s is not after the previous frame's %s", i, f.Position, last[i])
			}
			last[i] = p
			if i == 0 {
				first = f
			} else if !bytes.Equal(f.Raw, first.Raw) {
				t.Fatalf("socket %d got %s; socket 0 got %s", i, f.Raw, first.Raw)
			}
		}
		return first
	}
	msgKeys := []string{"id", "conversation", "sender", "receivers", "attachment_picture", "attachment_video",
		"text", "created_at", "updated_at", "read_by", "position", "edited_at", "deleted_at", "reactions", "reply_to", "delivered_to"}
	// checkMessage checks a message frame against the message object that
	// the send returned: every field the same, plus type and position.
	checkMessage := func(t testing.TB, f wsFrame, sent []byte) {
		t.Helper()
		var got, want map[string]any
		if err := json.Unmarshal(f.Raw, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(sent, &want); err != nil {
			t.Fatal(err)
		}
		if gotKeys := wsKeys(t, sent); !reflect.DeepEqual(gotKeys, wsSorted(msgKeys...)) {
			t.Fatalf("sent message keys = %v; want %v", gotKeys, wsSorted(msgKeys...))
		}
		if want["position"] != f.Position {
			t.Fatalf("message frame position = %q; the send answered %q", f.Position, want["position"])
		}
		want["type"] = "message"
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("message frame = %s; want the message object %s with type and position", f.Raw, sent)
		}
	}
	frameKeys := append([]string{"type"}, msgKeys...)

	t.Run("message", func(t *testing.T) {
		s := s.wsFor(t)
		r := s.do("POST", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "Hello, world!"})
		if r.Status != http.StatusCreated {
			t.Fatalf("send: %d %s", r.Status, r.Body)
		}
		f := logFrame(t, "message", frameKeys...)
		checkMessage(t, f, r.Body)
		if f.Sender != a.ID || f.Conversation != room || f.Text != "Hello, world!" {
			t.Fatalf("message frame = %s; want sender %d, conversation %d, the text sent", f.Raw, a.ID, room)
		}
	})
	t.Run("message with picture", func(t *testing.T) {
		s := s.wsFor(t)
		sent := s.wsSendPicture(a, room, "look")
		f := logFrame(t, "message", frameKeys...)
		checkMessage(t, f, sent)
		var m struct {
			AttachmentPicture string `json:"attachment_picture"`
		}
		_ = json.Unmarshal(f.Raw, &m)
		if want := "http://" + s.Addr() + "/media/"; !strings.HasPrefix(m.AttachmentPicture, want) {
			t.Fatalf("attachment_picture = %q; want an absolute URL under %s", m.AttachmentPicture, want)
		}
	})
	var msgID int64
	t.Run("read over WS", func(t *testing.T) {
		s := s.wsFor(t)
		msgID = s.send(a, room, "read me")
		logFrame(t, "message", frameKeys...)
		sb.write(t, map[string]any{"type": "read", "message_ids": []int64{msgID}})
		f := logFrame(t, "read", "type", "conversation", "reader", "message_ids", "position")
		if f.Conversation != room || f.Reader != b.ID || !slices.Equal(f.MessageIDs, []int64{msgID}) {
			t.Fatalf("read frame = %s; want conversation %d, reader %d, message_ids [%d]", f.Raw, room, b.ID, msgID)
		}
	})
	t.Run("read over REST", func(t *testing.T) {
		s := s.wsFor(t)
		id := s.send(b, room, "read me too")
		logFrame(t, "message", frameKeys...)
		if r := s.do("POST", "/read-message/", a.Access, map[string]any{"conversation_id": room, "message_ids": []int64{id}}); r.Status != http.StatusOK {
			t.Fatalf("read-message: %d %s", r.Status, r.Body)
		}
		f := logFrame(t, "read", "type", "conversation", "reader", "message_ids", "position")
		if f.Conversation != room || f.Reader != a.ID || !slices.Equal(f.MessageIDs, []int64{id}) {
			t.Fatalf("read frame = %s; want conversation %d, reader %d, message_ids [%d]", f.Raw, room, a.ID, id)
		}
	})
	t.Run("member_joined", func(t *testing.T) {
		s := s.wsFor(t)
		if r := s.do("POST", "/join-chatroom/", c.Access, map[string]any{"chatroom_id": room}); r.Status != http.StatusCreated {
			t.Fatalf("join: %d %s", r.Status, r.Body)
		}
		f := logFrame(t, "member_joined", "type", "conversation", "user", "position")
		if f.Conversation != room || f.User != c.ID {
			t.Fatalf("member_joined frame = %s; want conversation %d, user %d", f.Raw, room, c.ID)
		}
	})
	t.Run("member_left", func(t *testing.T) {
		s := s.wsFor(t)
		if r := s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), c.Access, nil); r.Status != http.StatusOK {
			t.Fatalf("leave: %d %s", r.Status, r.Body)
		}
		f := logFrame(t, "member_left", "type", "conversation", "user", "position")
		if f.Conversation != room || f.User != c.ID {
			t.Fatalf("member_left frame = %s; want conversation %d, user %d", f.Raw, room, c.ID)
		}
	})
	t.Run("typing", func(t *testing.T) {
		s := s.wsFor(t)
		for _, isTyping := range []bool{true, false} {
			sa.write(t, map[string]any{"type": "typing", "is_typing": isTyping})
			f := sb.expect(t, "typing")
			if got, want := wsKeys(t, f.Raw), wsSorted("type", "conversation", "sender", "is_typing"); !reflect.DeepEqual(got, want) {
				t.Fatalf("typing frame keys = %v; want %v", got, want)
			}
			if f.Conversation != room || f.Sender != a.ID || f.IsTyping == nil || *f.IsTyping != isTyping {
				t.Fatalf("typing frame = %s; want conversation %d, sender %d, is_typing %v", f.Raw, room, a.ID, isTyping)
			}
		}
		// Not echoed: the typist's next frame is the next message.
		id := s.send(b, room, "after typing")
		sa.expectMessage(t, id)
		sb.expectMessage(t, id)
	})
	t.Run("error", func(t *testing.T) {
		s := s.wsFor(t)
		sa.write(t, `{"type": "nonsense"}`)
		f := sa.expect(t, "error")
		if got, want := wsKeys(t, f.Raw), wsSorted("type", "detail"); !reflect.DeepEqual(got, want) || f.Detail == "" {
			t.Fatalf("error frame = %s; want keys %v with a detail", f.Raw, want)
		}
		// Only the socket that sent the bad frame hears of it.
		id := s.send(b, room, "after error")
		sa.expectMessage(t, id)
		sb.expectMessage(t, id)
	})
}

// TestWSClientFrames checks what the server does with client frames: a
// message is sent as the socket's user whatever sender it names, a foreign
// conversation is refused, and bad frames get an error frame while the
// socket stays open.
func TestWSClientFrames(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	other := s.room(b) // b's room that a is not in
	sa, sb := s.wsConnect(a, room, ""), s.wsConnect(b, room, "")

	t.Run("the longest text REST accepts fits a frame", func(t *testing.T) {
		s := s.wsFor(t)
		c := s.wsConnect(a, s.room(a), "")       // a room of its own: the shared rooms' sockets hear nothing
		text := strings.Repeat("\u0001", 64<<10) // 6 bytes each once JSON-escaped
		c.write(t, map[string]any{"type": "message", "text": text})
		if f := c.expect(t, "message"); len(f.Text) != 64<<10 {
			t.Fatalf("message of %d bytes; want %d", len(f.Text), 64<<10)
		}
	})

	t.Run("sender is the socket's user", func(t *testing.T) {
		s := s.wsFor(t)
		sa.write(t, map[string]any{"type": "message", "text": "spoofed?", "conversation": room, "sender": b.ID})
		f := sb.expect(t, "message")
		if f.Sender != a.ID || f.Text != "spoofed?" || f.Conversation != room {
			t.Fatalf("message frame = %s; want sender %d (the socket's user), not %d", f.Raw, a.ID, b.ID)
		}
		if got := sa.expect(t, "message"); got.ID != f.ID {
			t.Fatalf("sender's socket got message %d; want %d", got.ID, f.ID)
		}
		// The frame came after the read model shows the message.
		r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil)
		var msgs []struct{ ID, Sender int64 }
		r.JSON(t, &msgs)
		if len(msgs) != 1 || msgs[0].ID != f.ID || msgs[0].Sender != a.ID {
			t.Fatalf("list = %s; want message %d from %d", r.Body, f.ID, a.ID)
		}
	})
	t.Run("message without conversation", func(t *testing.T) {
		sa.write(t, map[string]any{"type": "message", "text": "no conversation field"})
		f := sa.expect(t, "message")
		sb.expectMessage(t, f.ID)
		if f.Sender != a.ID || f.Conversation != room {
			t.Fatalf("message frame = %s; want sender %d in room %d", f.Raw, a.ID, room)
		}
	})

	bad := []struct {
		name   string
		frame  string
		detail string // "": any
	}{
		{"invalid JSON", `{"type": "message", "text": `, "Frames must be JSON objects."},
		{"not an object", `[1, 2]`, "Frames must be JSON objects."},
		{"unknown type", `{"type": "shout", "text": "hi"}`, `Unknown frame type "shout".`},
		{"no type", `{"text": "hi"}`, ""},
		{"empty message", `{"type": "message", "text": "", "conversation": ` + fmt.Sprint(room) + `}`, ""},
		{"message without text", `{"type": "message"}`, ""},
		{"text not a string", `{"type": "message", "text": 5}`, "text: Not a valid string."},
		{"is_typing not a boolean", `{"type": "typing", "is_typing": "no"}`, "is_typing: Not a valid boolean."},
		{"other conversation", fmt.Sprintf(`{"type": "message", "text": "hi", "conversation": %d}`, other), ""},
		{"conversation not a number", `{"type": "message", "text": "hi", "conversation": "x"}`, ""},
		{"text too long", `{"type": "message", "text": "` + strings.Repeat("x", 64<<10+1) + `"}`, ""},
		{"client_id with a NUL", `{"type": "message", "text": "hi", "client_id": "a\u0000b"}`, "client_id must be at most 255 printable characters."},
		{"client_id of 3 KB", `{"type": "message", "text": "hi", "client_id": "` + strings.Repeat("k", 3<<10) + `"}`, "client_id must be at most 255 printable characters."},
		{"client_id not printable", `{"type": "message", "text": "hi", "client_id": "tab\there"}`, "client_id must be at most 255 printable characters."},
		{"read without ids", `{"type": "read"}`, "message_ids: This field is required."},
		{"read of ids not in the room", `{"type": "read", "message_ids": [999999]}`, ""},
		{"read ids not a list", `{"type": "read", "message_ids": "1"}`, ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			sa.write(t, tt.frame)
			if f := sa.expect(t, "error"); f.Detail == "" || (tt.detail != "" && f.Detail != tt.detail) {
				t.Fatalf("error frame = %s; want detail %q", f.Raw, tt.detail)
			}
			// Still open, and nothing was sent: the next frame of both
			// sockets is the next message.
			sa.write(t, map[string]any{"type": "message", "text": "still open after " + tt.name})
			f := sa.expect(t, "message")
			if f.Text != "still open after "+tt.name {
				t.Fatalf("got message %s; want the one just sent", f.Raw)
			}
			sb.expectMessage(t, f.ID)
		})
	}
	// Nothing reached the other room.
	r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", other), b.Access, nil)
	if string(bytes.TrimSpace(r.Body)) != "[]" {
		t.Fatalf("other room's messages = %s; want none", r.Body)
	}
}

// TestWSRESTSendsArriveOnce sends concurrently over REST from two members and
// checks that every socket of the room, the senders' own included, gets each
// message exactly once, in log order.
func TestWSRESTSendsArriveOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	sockets := []*wsConn{s.wsConnect(a, room, ""), s.wsConnect(a, room, ""), s.wsConnect(b, room, "")}

	const perSender = 15
	type result struct {
		ids []int64
		err error
	}
	results := make(chan result, 2)
	for _, u := range []user{a, b} {
		go func() {
			var r result
			for i := range perSender {
				id, err := s.trySend(u, room, fmt.Sprintf("%d from %d", i, u.ID))
				if err != nil {
					r.err = err
					break
				}
				r.ids = append(r.ids, id)
			}
			results <- r
		}()
	}
	var sent []int64
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		sent = append(sent, r.ids...)
	}
	slices.Sort(sent)
	for i, so := range sockets {
		var got []int64
		var prev eventstore.Position
		for range len(sent) {
			f := so.expect(t, "message")
			if p := wsPosition(t, f); !prev.Less(p) {
				t.Fatalf("socket %d: message %d at %s is not after the previous frame's %s", i, f.ID, f.Position, prev)
			} else {
				prev = p
			}
			got = append(got, f.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, sent) {
			t.Fatalf("socket %d got messages %v; want each of %v once", i, got, sent)
		}
	}
	// Nothing more: the next frame everywhere is the next message.
	id := s.send(b, room, "sentinel")
	for _, so := range sockets {
		so.expectMessage(t, id)
	}
}

// TestWSTypingNotEchoed checks that typing reaches the other members'
// sockets and none of the typist's.
func TestWSTypingNotEchoed(t *testing.T) {
	t.Parallel()
	// A socket's handshake answers before it registers in its room, and a
	// typing notice goes only to the sockets registered when it is sent:
	// each is let register before the notice.
	var registered chan int64
	s := startServer(t, func(c *chatd.Config) { registered, _ = socketEvents(c) })
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b, c)
	connect := func(u user) *wsConn {
		so := s.wsConnect(u, room, "")
		<-registered
		return so
	}
	typist1, typist2 := connect(a), connect(a)
	others := []*wsConn{connect(b), connect(c), connect(c)}

	typist1.write(t, `{"type": "typing"}`)
	for i, so := range others {
		f := so.expect(t, "typing")
		if f.Sender != a.ID || f.Conversation != room || f.IsTyping == nil || !*f.IsTyping {
			t.Fatalf("socket %d: typing frame = %s; want sender %d, room %d, is_typing true", i, f.Raw, a.ID, room)
		}
	}
	// Every socket of the room has been offered the notice by now; the
	// typist's sockets must see the next message first.
	id := s.send(b, room, "after typing")
	for _, so := range append([]*wsConn{typist1, typist2}, others...) {
		so.expectMessage(t, id)
	}
}

// TestWSResume disconnects and reconnects with ?since= while a sender sends
// without pause: across every seam the socket must see each message once,
// in order, with no gap.
func TestWSResume(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)

	// One sender sending in sequence: message ids then follow log order.
	const total = 80
	sent := make(chan int64, total)
	senderErr := make(chan error, 1)
	stop := make(chan struct{})
	so := s.wsConnect(b, room, "") // before the first send: it sees every message
	go func() {
		defer close(sent)
		for i := range total {
			select {
			case <-stop:
				return
			default:
			}
			id, err := s.trySend(a, room, fmt.Sprintf("m%d", i))
			if err != nil {
				senderErr <- err
				return
			}
			sent <- id
		}
	}()
	defer close(stop)

	var lastID int64
	var last wsFrame
	var seen int
	for round := 0; seen < total; round++ {
		// Read a few frames of this connection.
		for range min(3+round%4, total-seen) {
			f := so.expect(t, "message")
			if lastID != 0 && f.ID != lastID+1 {
				t.Fatalf("round %d: got message %d after %d; want %d (no gap, no duplicate)", round, f.ID, lastID, lastID+1)
			}
			if last.Position != "" && !wsPosition(t, last).Less(wsPosition(t, f)) {
				t.Fatalf("round %d: position %s is not after %s", round, f.Position, last.Position)
			}
			lastID, last = f.ID, f
			seen++
		}
		if seen == total {
			break
		}
		_ = so.conn.Close()
		// Wait until a message after the last one seen has been sent (or
		// the sender is done), then reconnect while it keeps sending.
		for waited := false; !waited; {
			select {
			case id, ok := <-sent:
				waited = !ok || id > lastID
			case err := <-senderErr:
				t.Fatal(err)
			}
		}
		so = s.wsConnect(b, room, "since="+url.QueryEscape(last.Position))
	}
	select {
	case err := <-senderErr:
		t.Fatal(err)
	default:
	}
	id := s.send(a, room, "sentinel")
	so.expectMessage(t, id)
}

// TestWSResumeLongGap resumes after more messages than a socket's backlog,
// while several senders keep sending: the resume sends the whole gap and
// then the live messages, each once, in log order.
func TestWSResumeLongGap(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	so := s.wsConnect(b, room, "")
	first := so.expectMessage(t, s.send(a, room, "first"))
	_ = so.conn.Close()

	const (
		missed  = 200 // sent before the reconnect: more than a socket's backlog
		total   = 320 // the rest are sent during and after it
		senders = 4
	)
	sent := make(chan int64, total)
	errs := make(chan error, senders)
	for g := range senders {
		go func() {
			for i := range total / senders {
				id, err := s.trySend(a, room, fmt.Sprintf("%d.%d", g, i))
				if err != nil {
					errs <- err
					return
				}
				sent <- id
			}
			errs <- nil
		}()
	}
	var want []int64
	for len(want) < missed {
		select {
		case id := <-sent:
			want = append(want, id)
		case err := <-errs:
			t.Fatal(err) // an early nil is impossible: each sender sends more than missed/senders
		}
	}
	so = s.wsConnect(b, room, "since="+url.QueryEscape(first.Position))
	prev := wsPosition(t, first)
	var got []int64
	for i := range total {
		f := so.next(t)
		if f.Type != "message" {
			t.Fatalf("frame %d after the reconnect = %s; want a message", i, f.Raw)
		}
		if p := wsPosition(t, f); !prev.Less(p) {
			t.Fatalf("frame %d after the reconnect: message %d at %s is not after %s", i, f.ID, f.Position, prev)
		} else {
			prev = p
		}
		got = append(got, f.ID)
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(sent)
	for id := range sent {
		want = append(want, id)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("after the reconnect got messages %v; want each of %v once", got, want)
	}
	id := s.send(a, room, "sentinel")
	so.expectMessage(t, id)
}

// TestWSSlowConsumerDropped fills the buffers of a socket that never reads:
// the server drops it, and the room's other sockets keep receiving every
// message promptly meanwhile.
func TestWSSlowConsumerDropped(t *testing.T) {
	t.Parallel()
	// A blocked write never times out here: the slow socket can only be
	// dropped because its backlog filled, and a room that waited on it
	// would never deliver to the fast socket again.
	s := startServer(t, func(c *chatd.Config) { c.Hooks.WSWriteWait = time.Hour })
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b, c)
	smallBuffer := &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			return errors.Join(err, serr)
		}}).DialContext,
	}
	slow := s.wsConnectWith(smallBuffer, c, room, "")
	fast := s.wsConnect(b, room, "")

	// 64 KiB frames: the server's socket backlog (128 frames) plus the
	// kernel's buffers (a few MiB) hold far fewer than this. Several senders
	// keep the server busy.
	const n, senders = 256, 4
	text := strings.Repeat("x", 64<<10)
	errs := make(chan error, senders)
	for range senders {
		go func() {
			for range n / senders {
				if _, err := s.trySend(a, room, text); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var ids []int64
	var prev eventstore.Position
	for i := range n {
		f := fast.nextWithin(t, wsWait)
		if p := wsPosition(t, f); f.Type != "message" || !prev.Less(p) {
			t.Fatalf("fast socket frame %d = %.200s; want the next message", i, f.Raw)
		} else {
			prev = p
		}
		ids = append(ids, f.ID)
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// The slow socket was dropped: reading now, it gets a prefix of the
	// messages and then the end of the connection.
	got := 0
	_ = slow.conn.SetReadDeadline(time.Now().Add(wsWait))
	for {
		_, b, err := slow.conn.ReadMessage()
		if err != nil {
			// Either the close frame ("too slow") reached it, or the
			// server's write deadline passed first and it cut the
			// connection (1006).
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.ClosePolicyViolation && ce.Code != websocket.CloseAbnormalClosure {
				t.Fatalf("slow socket closed with %d %q; want %d or a cut connection", ce.Code, ce.Text, websocket.ClosePolicyViolation)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("slow socket still open after %d of %d messages; want it dropped", got, n)
			}
			t.Logf("slow socket: %v", err)
			break
		}
		var f wsFrame
		if json.Unmarshal(b, &f) != nil || f.Type != "message" || got >= n || f.ID != ids[got] {
			t.Fatalf("slow socket frame %d = %.200s; want message %d", got, b, ids[min(got, n-1)])
		}
		got++
	}
	if got == n {
		t.Fatalf("slow socket got all %d messages; want it dropped before the end", n)
	}
	t.Logf("slow socket got %d of %d messages before it was dropped", got, n)
	// The room goes on.
	id := s.send(a, room, "after the drop")
	fast.expectMessage(t, id)
}

// TestWSLeaveClosesSockets checks that leaving a room delivers member_left
// and then closes the leaver's sockets for that room only.
func TestWSLeaveClosesSockets(t *testing.T) {
	t.Parallel()
	// A socket's handshake answers before it registers: one that has not
	// registered when the leave lands is refused as a stranger (1008)
	// instead of hearing member_left. Each is let register first.
	var registered chan int64
	s := startServer(t, func(c *chatd.Config) { registered, _ = socketEvents(c) })
	a, b := s.newUser(), s.newUser()
	room, other := s.room(a, b), s.room(b, a)
	connect := func(u user, room int64) *wsConn {
		so := s.wsConnect(u, room, "")
		<-registered
		return so
	}
	leaver1, leaver2 := connect(b, room), connect(b, room)
	elsewhere := connect(b, other)
	stayer := connect(a, room)

	if r := s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), b.Access, nil); r.Status != http.StatusOK {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	for _, so := range []*wsConn{leaver1, leaver2, stayer} {
		if f := so.expect(t, "member_left"); f.User != b.ID {
			t.Fatalf("member_left frame = %s; want user %d", f.Raw, b.ID)
		}
	}
	leaver1.expectClose(t, websocket.CloseNormalClosure)
	leaver2.expectClose(t, websocket.CloseNormalClosure)
	// The stayer's socket and the leaver's socket in another room go on.
	id := s.send(a, room, "still here")
	stayer.expectMessage(t, id)
	id = s.send(a, other, "elsewhere")
	elsewhere.expectMessage(t, id)
	// And the leaver cannot come back without joining.
	if _, status, _ := s.wsDial(nil, room, "token="+url.QueryEscape(b.Access), nil); status != http.StatusForbidden {
		t.Fatalf("reconnect after leaving: status %d; want 403", status)
	}
}

// TestWSLogoutClosesSessionSockets checks that logging out closes the
// sockets opened with that session's token and no others.
func TestWSLogoutClosesSessionSockets(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room, other := s.room(a, b), s.room(a)
	a2 := s.login(a) // a second session of the same user
	gone1, gone2 := s.wsConnect(a, room, ""), s.wsConnect(a, other, "")
	kept, peer := s.wsConnect(a2, room, ""), s.wsConnect(b, room, "")

	if r := s.do("POST", "/auth/logout/", a.Access, nil); r.Status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	gone1.expectClose(t, websocket.ClosePolicyViolation)
	gone2.expectClose(t, websocket.ClosePolicyViolation)
	id := s.send(b, room, "after logout")
	kept.expectMessage(t, id)
	peer.expectMessage(t, id)
	if _, status, _ := s.wsDial(nil, room, "token="+url.QueryEscape(a.Access), nil); status != http.StatusUnauthorized {
		t.Fatalf("socket with the logged-out token: status %d; want 401", status)
	}
}

// TestWSShutdownGoingAway checks that a graceful shutdown closes sockets
// with 1001.
func TestWSShutdownGoingAway(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	sockets := []*wsConn{s.wsConnect(a, room, ""), s.wsConnect(b, room, "")}
	id := s.send(a, room, "before shutdown")
	for _, so := range sockets {
		so.expectMessage(t, id)
	}
	s.stop() // what Run does when its context ends
	for _, so := range sockets {
		so.expectClose(t, websocket.CloseGoingAway)
	}
}

// TestWSResumeAcrossLeaveAndRejoin: a user who left and came back while
// their socket was away resumes from before the leave. They hear their own
// leave and return, nothing said while they were out, and then the room
// live.
func TestWSResumeAcrossLeaveAndRejoin(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	so := s.wsConnect(b, room, "")
	seen := so.expectMessage(t, s.send(a, room, "before"))
	_ = so.conn.Close()

	if r := s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), b.Access, nil); r.Status != http.StatusOK {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	s.send(a, room, "while b was out")
	if r := s.do("POST", "/join-chatroom/", b.Access, map[string]any{"chatroom_id": room}); r.Status != http.StatusCreated {
		t.Fatalf("join: %d %s", r.Status, r.Body)
	}
	back := s.send(a, room, "after b came back")

	so = s.wsConnect(b, room, "since="+url.QueryEscape(seen.Position))
	if f := so.expect(t, "member_left"); f.User != b.ID {
		t.Fatalf("first frame = %s; want b's member_left", f.Raw)
	}
	if f := so.expect(t, "member_joined"); f.User != b.ID {
		t.Fatalf("second frame = %s; want b's member_joined", f.Raw)
	}
	so.expectMessage(t, back) // not the message sent while b was out
	so.expectMessage(t, s.send(a, room, "live"))
}
