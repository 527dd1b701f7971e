package chatd_test

// End-to-end tests of the REST contract (shared/API.md sections 1 to 5 and
// 7) over real HTTP, and the helpers the other REST test files share.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
)

// ---------------------------------------------------------------------------
// Helpers shared by the REST tests.

// with returns a view of s whose helpers (do, newUser, room, send) report to
// t: the harness binds them to the test that started the server, and a
// subtest must not fail its parent.
func (s *testServer) with(t testing.TB) *testServer {
	c := *s
	c.t = t
	return &c
}

// capture is a serverOption that copies the final configuration into *cfg,
// for starting a second process on the same database.
func capture(cfg *chatd.Config) serverOption { return func(c *chatd.Config) { *cfg = *c } }

// noRedirect sends requests as given and never follows a redirect, so a
// redirected POST shows up as a 3xx instead of a silent GET.
var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	Transport:     specChecked,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Requests: try sends every one; call, tryJSON, callJSON and do are its
// shorthands.

// try sends a request exactly as given (headers are name, value pairs; no
// Content-Type unless given) and returns the error instead of failing, for
// goroutines.
func (s *testServer) try(method, path string, body io.Reader, headers ...string) (response, error) {
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// call is try that fails t on a transport error.
func (s *testServer) call(t testing.TB, method, path string, body io.Reader, headers ...string) response {
	t.Helper()
	r, err := s.try(method, path, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryJSON sends v as a JSON body with the token, if any: nil is no body,
// a string or []byte is sent as it is, anything else is marshalled.
func (s *testServer) tryJSON(method, path, token string, v any, headers ...string) (response, error) {
	var body io.Reader
	switch b := v.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		body = bytes.NewReader(j)
	}
	if body != nil {
		headers = append([]string{"Content-Type", "application/json"}, headers...)
	}
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	return s.try(method, path, body, headers...)
}

// trySend sends a text message as u and returns its id, reporting failures
// instead of failing the test, for other goroutines. headers are name,
// value pairs (an Idempotency-Key, say).
func (s *testServer) trySend(u user, room int64, text string, headers ...string) (int64, error) {
	r, err := s.tryJSON("POST", "/send-message/", u.Access, map[string]any{"conversation_id": room, "text": text}, headers...)
	if err != nil {
		return 0, err
	}
	if r.Status != http.StatusCreated {
		return 0, fmt.Errorf("send: %d %s", r.Status, r.Body)
	}
	var m struct{ ID int64 }
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return 0, err
	}
	return m.ID, nil
}

// callJSON is tryJSON that fails t on a transport error.
func (s *testServer) callJSON(t testing.TB, method, path, token string, v any, headers ...string) response {
	t.Helper()
	r, err := s.tryJSON(method, path, token, v, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// text is the body without the newline the server's JSON encoder ends with.
func (r response) text() string { return strings.TrimSpace(string(r.Body)) }

func wantStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status = %d; want %d (body %s)", r.Status, want, r.Body)
	}
}

// wantDetail checks a {"detail": "..."} error: the status, that detail is
// the only key, and its text (any non-empty text when detail is "").
func wantDetail(t testing.TB, r response, status int, detail string) {
	t.Helper()
	wantStatus(t, r, status)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("body %s is not a JSON object: %v", r.Body, err)
	}
	got, ok := body["detail"].(string)
	if len(body) != 1 || !ok || got == "" {
		t.Fatalf("body = %s; want exactly {\"detail\": \"...\"}", r.Body)
	}
	if detail != "" && got != detail {
		t.Fatalf("detail = %q; want %q", got, detail)
	}
}

// wantFields checks a 400 field error: exactly these fields, each with
// exactly these messages (a nil list: any non-empty list of messages).
func wantFields(t testing.TB, r response, want map[string][]string) {
	t.Helper()
	wantStatus(t, r, http.StatusBadRequest)
	var got map[string][]string
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("body %s is not {\"field\": [\"message\"]}: %v", r.Body, err)
	}
	if len(got) != len(want) {
		t.Fatalf("fields = %s; want the fields of %v", r.Body, want)
	}
	for f, msgs := range want {
		g, ok := got[f]
		switch {
		case !ok || len(g) == 0:
			t.Fatalf("field errors = %s; want messages for %q", r.Body, f)
		case msgs != nil && !slices.Equal(g, msgs):
			t.Fatalf("%s errors = %q; want %q", f, g, msgs)
		}
	}
}

// wantUnauthorized checks a 401: WWW-Authenticate: Bearer and a detail.
func wantUnauthorized(t testing.TB, r response) {
	t.Helper()
	wantDetail(t, r, http.StatusUnauthorized, "")
	if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Fatalf("WWW-Authenticate = %q; want Bearer", h)
	}
}

// messageJSON is the message object of API.md section 4.
type messageJSON struct {
	ID                int64   `json:"id"`
	Conversation      int64   `json:"conversation"`
	Sender            int64   `json:"sender"`
	Receivers         []int64 `json:"receivers"`
	AttachmentPicture *string `json:"attachment_picture"`
	AttachmentVideo   *string `json:"attachment_video"`
	Text              string  `json:"text"`
	CreatedAt         string  `json:"created_at"`
	UpdatedAt         string  `json:"updated_at"`
	ReadBy            []int64 `json:"read_by"`
	Position          string  `json:"position"`
	DeliveredTo       []int64 `json:"delivered_to"`
}

var messageKeys = []string{"id", "conversation", "sender", "receivers", "attachment_picture",
	"attachment_video", "text", "created_at", "updated_at", "read_by", "position",
	"edited_at", "deleted_at", "reactions", "reply_to", "delivered_to"}

// chatroomJSON is the chatroom object of API.md section 3, with the extras
// list-chatrooms may carry.
type chatroomJSON struct {
	ID          int64        `json:"id"`
	Members     []int64      `json:"members"`
	Type        string       `json:"type"`
	Name        *string      `json:"name"`
	Description *string      `json:"description"`
	CreatedBy   int64        `json:"created_by"`
	CreatedAt   string       `json:"created_at"`
	UpdatedAt   string       `json:"updated_at"`
	UnreadCount *int64       `json:"unread_count"`
	LastMessage *messageJSON `json:"last_message"`
	Admins      []int64      `json:"admins"`
}

var chatroomKeys = []string{"id", "members", "type", "name", "description", "created_by", "created_at", "updated_at", "admins"}

var timeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`)

// wantObject checks that raw is a JSON object with every key of keys (null
// allowed) and no keys beyond keys and extra.
func wantObject(t testing.TB, raw json.RawMessage, keys []string, extra ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", raw, err)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Fatalf("object %s has no %q; want keys %q", raw, k, keys)
		}
	}
	for k := range m {
		if !slices.Contains(keys, k) && !slices.Contains(extra, k) {
			t.Fatalf("object %s has unexpected key %q", raw, k)
		}
	}
}

// wantKeyOrder checks that a JSON object's top-level keys come in order.
func wantKeyOrder(t testing.TB, raw []byte, keys ...string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not a JSON object", raw)
	}
	var got []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		got = append(got, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("object keys %q; want %q in that order", got, keys)
	}
}

// decodeMessage checks a message object's shape and decodes it.
func decodeMessage(t testing.TB, raw json.RawMessage) messageJSON {
	t.Helper()
	wantObject(t, raw, messageKeys)
	var m messageJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("message %s: %v", raw, err)
	}
	if m.Receivers == nil || m.ReadBy == nil {
		t.Fatalf("message %s: receivers and read_by must be arrays, never null", raw)
	}
	for _, ts := range []string{m.CreatedAt, m.UpdatedAt} {
		if !timeRE.MatchString(ts) {
			t.Fatalf("message %s: time %q is not RFC 3339 UTC with microseconds", raw, ts)
		}
	}
	return m
}

// decodeMessages decodes a message list.
func decodeMessages(t testing.TB, r response) []messageJSON {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	var raws []json.RawMessage
	if err := json.Unmarshal(r.Body, &raws); err != nil || raws == nil {
		t.Fatalf("body %s is not a JSON array: %v", r.Body, err)
	}
	out := make([]messageJSON, len(raws))
	for i, raw := range raws {
		out[i] = decodeMessage(t, raw)
	}
	return out
}

// decodeChatroom checks a chatroom object's shape and decodes it.
func decodeChatroom(t testing.TB, raw json.RawMessage, extra ...string) chatroomJSON {
	t.Helper()
	wantObject(t, raw, chatroomKeys, extra...)
	var c chatroomJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("chatroom %s: %v", raw, err)
	}
	if c.Members == nil {
		t.Fatalf("chatroom %s: members must be an array", raw)
	}
	if !slices.IsSorted(c.Members) {
		t.Fatalf("chatroom %s: members %v not ascending", raw, c.Members)
	}
	for _, ts := range []string{c.CreatedAt, c.UpdatedAt} {
		if !timeRE.MatchString(ts) {
			t.Fatalf("chatroom %s: time %q is not RFC 3339 UTC with microseconds", raw, ts)
		}
	}
	if c.LastMessage != nil {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(raw, &m)
		decodeMessage(t, m["last_message"])
	}
	return c
}

// ids returns the ids of messages, in order.
func ids(ms []messageJSON) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// conversationMessages lists a room's messages as u, with an optional query.
func (s *testServer) conversationMessages(t testing.TB, u user, room int64, query string) ([]messageJSON, response) {
	t.Helper()
	r := s.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/%s", room, query), u.Access, nil)
	return decodeMessages(t, r), r
}

// chatrooms lists u's chatrooms.
func (s *testServer) chatrooms(t testing.TB, u user) []chatroomJSON {
	t.Helper()
	return decodeChatrooms(t, s.callJSON(t, "GET", "/list-chatrooms/", u.Access, nil))
}

// decodeChatrooms checks and decodes a list-chatrooms answer.
func decodeChatrooms(t testing.TB, r response) []chatroomJSON {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	var raws []json.RawMessage
	if err := json.Unmarshal(r.Body, &raws); err != nil || raws == nil {
		t.Fatalf("list-chatrooms %s is not a JSON array: %v", r.Body, err)
	}
	out := make([]chatroomJSON, len(raws))
	for i, raw := range raws {
		out[i] = decodeChatroom(t, raw, "unread_count", "last_message")
		if out[i].UnreadCount == nil {
			t.Fatalf("list-chatrooms: room %s has no unread_count", raw)
		}
	}
	return out
}

// chatroomOf finds a room in a chatroom list.
func chatroomOf(rooms []chatroomJSON, id int64) (chatroomJSON, bool) {
	for _, r := range rooms {
		if r.ID == id {
			return r, true
		}
	}
	return chatroomJSON{}, false
}

// sendJSON posts a message and decodes it.
func (s *testServer) sendJSON(t testing.TB, u user, body any, headers ...string) messageJSON {
	t.Helper()
	r := s.callJSON(t, "POST", "/send-message/", u.Access, body, headers...)
	wantStatus(t, r, http.StatusCreated)
	return decodeMessage(t, r.Body)
}

// linkRE matches one link-value of an RFC 8288 Link header.
var linkRE = regexp.MustCompile(`^\s*<([^>]*)>\s*;\s*rel="([^"]*)"\s*$`)

// links parses a Link header into rel → request URI, checking that every
// target is an absolute URL on this server.
func (s *testServer) links(t testing.TB, r response) map[string]string {
	t.Helper()
	out := map[string]string{}
	h := r.Header.Get("Link")
	if h == "" {
		return out
	}
	for _, part := range strings.Split(h, ",") {
		m := linkRE.FindStringSubmatch(part)
		if m == nil {
			t.Fatalf("Link %q: %q is not <url>; rel=\"...\"", h, part)
		}
		u, err := url.Parse(m[1])
		if err != nil || !u.IsAbs() || "http://"+u.Host != s.base {
			t.Fatalf("Link %q: target %q is not an absolute URL on %s", h, m[1], s.base)
		}
		if _, dup := out[m[2]]; dup {
			t.Fatalf("Link %q: rel %q twice", h, m[2])
		}
		out[m[2]] = u.RequestURI()
	}
	return out
}

// ---------------------------------------------------------------------------
// The README's curl examples.

// readme is API.md section 5, verbatim.
const readme = `
curl -X POST http://localhost:8000/auth/register/ -H "Content-Type: application/json" -d '{"username": "your_username", "password": "your_password"}'
curl -X POST http://localhost:8000/auth/login/ -H "Content-Type: application/json" -d '{"username": "your_username", "password": "your_password"}'
curl -X POST http://localhost:8000/create-chatroom/ -H "Content-Type: application/json" -H "Authorization: Bearer TOKEN"
curl -X POST http://localhost:8000/join-chatroom/ -H "Content-Type: application/json" -H "Authorization: Bearer TOKEN" -d '{"chatroom_id": 1}'
curl -X GET http://localhost:8000/list-chatrooms/ -H "Authorization: Bearer TOKEN"
curl -X DELETE http://localhost:8000/leave-chatroom/1/ -H "Authorization: Bearer TOKEN"
curl -X POST http://localhost:8000/send-message/ -H "Content-Type: application/json" -H "Authorization: Bearer TOKEN" -d '{"conversation_id": 1, "text": "Hello, world!"}'
curl -X GET http://localhost:8000/list-messages/ -H "Authorization: Bearer TOKEN"
curl -X GET http://localhost:8000/list-conversation-messages/1/ -H "Authorization: Bearer TOKEN"
curl -X POST http://localhost:8000/read-message/ -H "Content-Type: application/json" -H "Authorization: Bearer TOKEN" -d '{"conversation_id": 1, "message_ids": [1, 2]}'
curl -X POST http://localhost:8000/auth/logout/ -H "Authorization: Bearer TOKEN"
`

// curlCommand is one parsed curl line.
type curlCommand struct {
	method, path string
	headers      [][2]string
	body         *string
}

// shellWords splits a line like a POSIX shell does for the quoting the
// README uses (single and double quotes, no escapes).
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// readmeCommands parses readme into commands keyed by path without slashes
// at the ends ("auth/register", "leave-chatroom/1").
func readmeCommands(t testing.TB) map[string]curlCommand {
	t.Helper()
	out := map[string]curlCommand{}
	for _, line := range strings.Split(strings.TrimSpace(readme), "\n") {
		w := shellWords(line)
		if len(w) == 0 || w[0] != "curl" {
			t.Fatalf("not a curl command: %q", line)
		}
		var c curlCommand
		for i := 1; i < len(w); i++ {
			switch w[i] {
			case "-X":
				i++
				c.method = w[i]
			case "-H":
				i++
				name, value, ok := strings.Cut(w[i], ": ")
				if !ok {
					t.Fatalf("bad header %q", w[i])
				}
				c.headers = append(c.headers, [2]string{name, value})
			case "-d":
				i++
				b := w[i]
				c.body = &b
			default:
				c.path = strings.TrimPrefix(w[i], "http://localhost:8000")
			}
		}
		out[strings.Trim(c.path, "/")] = c
	}
	if len(out) != 11 {
		t.Fatalf("parsed %d README commands; want 11", len(out))
	}
	return out
}

// runCurl sends a README command as written, with TOKEN replaced by token.
func (s *testServer) runCurl(t testing.TB, c curlCommand, token string) response {
	t.Helper()
	var body io.Reader
	if c.body != nil {
		body = strings.NewReader(*c.body)
	}
	var headers []string
	for _, h := range c.headers {
		headers = append(headers, h[0], strings.ReplaceAll(h[1], "TOKEN", token))
	}
	return s.call(t, c.method, c.path, body, headers...)
}

// TestREADMEExamples runs every curl command of API.md section 5 as written
// (token substituted) on a fresh installation, where ids count from 1. The
// README's own order cannot all succeed (it leaves room 1 before sending to
// it), so the commands run in a working order: a second user joins room 1
// and sends messages 1 and 2, the README user reads them, the second user
// leaves, and the README user logs out.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	cmd := readmeCommands(t)

	r := s.runCurl(t, cmd["auth/register"], "")
	wantStatus(t, r, http.StatusCreated)
	if got, want := r.text(), `{"id":1,"username":"your_username"}`; got != want {
		t.Fatalf("register = %s; want %s", got, want)
	}

	r = s.runCurl(t, cmd["auth/login"], "")
	wantStatus(t, r, http.StatusOK)
	var login struct {
		Message, Access, Refresh string
		User                     userJSON
	}
	r.JSON(t, &login)
	wantObject(t, r.Body, []string{"message", "access", "refresh", "user"})
	if login.Message != "Login successful" || login.Access == "" || login.Refresh == "" || login.User != (userJSON{1, "your_username"}) {
		t.Fatalf("login = %s; want Login successful, tokens and user 1", r.Body)
	}
	me := user{ID: 1, Name: "your_username", Password: "your_password", Access: login.Access, Refresh: login.Refresh}

	r = s.runCurl(t, cmd["create-chatroom"], me.Access)
	wantStatus(t, r, http.StatusCreated)
	room := decodeChatroom(t, r.Body)
	if room.ID != 1 || !slices.Equal(room.Members, []int64{1}) || room.Type != "chat" || room.Name != nil ||
		room.Description != nil || room.CreatedBy != 1 {
		t.Fatalf("create-chatroom = %s; want chat 1 of user 1 with null name and description", r.Body)
	}

	// The creator is a member already: the same membership, 200.
	r = s.runCurl(t, cmd["join-chatroom"], me.Access)
	wantStatus(t, r, http.StatusOK)
	if got, want := r.text(), `{"id":1,"conversation":1,"user":1}`; got != want {
		t.Fatalf("join-chatroom (member) = %s; want %s", got, want)
	}

	friend := s.newUser() // id 2
	if friend.ID != 2 {
		t.Fatalf("second user id = %d; want 2", friend.ID)
	}
	r = s.runCurl(t, cmd["join-chatroom"], friend.Access)
	wantStatus(t, r, http.StatusCreated)
	if got, want := r.text(), `{"id":2,"conversation":1,"user":2}`; got != want {
		t.Fatalf("join-chatroom = %s; want %s", got, want)
	}

	r = s.runCurl(t, cmd["list-chatrooms"], me.Access)
	rooms := decodeChatrooms(t, r)
	if len(rooms) != 1 || rooms[0].ID != 1 || !slices.Equal(rooms[0].Members, []int64{1, 2}) {
		t.Fatalf("list-chatrooms = %s; want room 1 with members [1 2]", r.Body)
	}

	for want := int64(1); want <= 2; want++ {
		r = s.runCurl(t, cmd["send-message"], friend.Access)
		wantStatus(t, r, http.StatusCreated)
		m := decodeMessage(t, r.Body)
		if m.ID != want || m.Conversation != 1 || m.Sender != 2 || !slices.Equal(m.Receivers, []int64{1}) ||
			m.Text != "Hello, world!" || m.AttachmentPicture != nil || m.AttachmentVideo != nil || len(m.ReadBy) != 0 {
			t.Fatalf("send-message = %s; want message %d from 2 to [1]", r.Body, want)
		}
	}

	for _, name := range []string{"list-messages", "list-conversation-messages/1"} {
		r = s.runCurl(t, cmd[name], me.Access)
		if got := ids(decodeMessages(t, r)); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("%s = %v; want [1 2]", name, got)
		}
	}

	r = s.runCurl(t, cmd["read-message"], me.Access)
	wantStatus(t, r, http.StatusOK)
	if got := r.text(); got != `{"success":true}` {
		t.Fatalf("read-message = %s; want {\"success\":true}", got)
	}
	for _, m := range firstOf(s.conversationMessages(t, me, 1, "")) {
		if !slices.Equal(m.ReadBy, []int64{1}) {
			t.Fatalf("message %d read_by = %v; want [1]", m.ID, m.ReadBy)
		}
	}

	r = s.runCurl(t, cmd["leave-chatroom/1"], friend.Access)
	wantStatus(t, r, http.StatusOK)
	if got := r.text(); got != `{"message":"Leave chatroom successful"}` {
		t.Fatalf("leave-chatroom = %s", got)
	}
	if rooms := s.chatrooms(t, me); len(rooms) != 1 || !slices.Equal(rooms[0].Members, []int64{1}) {
		t.Fatalf("after leave, members = %+v; want [1]", rooms)
	}

	r = s.runCurl(t, cmd["auth/logout"], me.Access)
	wantStatus(t, r, http.StatusOK)
	if got := r.text(); got != `{"message":"Logout successful"}` {
		t.Fatalf("logout = %s", got)
	}
	wantUnauthorized(t, s.runCurl(t, cmd["list-chatrooms"], me.Access))
}

type userJSON struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// firstOf returns the first of two results.
func firstOf[T, U any](v T, _ U) T { return v }

// ---------------------------------------------------------------------------
// Every endpoint, with and without the trailing slash, and the aliases.

// TestEndpointsWithAndWithoutSlash calls every endpoint of API.md sections 2
// to 4 and 7 with its documented path and without the trailing slash; both
// must answer the same, and a POST must not be redirected.
func TestEndpointsWithAndWithoutSlash(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, slash := range []bool{true, false} {
		name := "with slash"
		if !slash {
			name = "without slash"
		}
		t.Run(name, func(t *testing.T) {
			s := s.with(t)
			p := func(format string, args ...any) string {
				path := fmt.Sprintf(format, args...)
				if !slash {
					path = strings.TrimSuffix(path, "/")
				}
				return path
			}
			check := func(step string, r response, want int) {
				t.Helper()
				if r.Status != want {
					t.Fatalf("%s: status = %d; want %d (Location %q, body %s)", step, r.Status, want, r.Header.Get("Location"), r.Body)
				}
			}
			creds := func(u user) map[string]string { return map[string]string{"username": u.Name, "password": u.Password} }
			a := user{Name: fmt.Sprintf("slash_%t_a", slash), Password: "password-a1"}
			b := user{Name: fmt.Sprintf("slash_%t_b", slash), Password: "password-b1"}

			for _, reg := range []struct {
				path string
				u    user
			}{{"/auth/register/", a}, {"/register/", b}} {
				check("register "+reg.path, s.callJSON(t, "POST", p("%s", reg.path), "", creds(reg.u)), http.StatusCreated)
			}
			var login struct {
				Access, Refresh string
				User            struct{ ID int64 }
			}
			for _, lg := range []struct {
				path string
				u    *user
			}{{"/auth/login/", &a}, {"/login/", &b}} {
				r := s.callJSON(t, "POST", p("%s", lg.path), "", creds(*lg.u))
				check("login "+lg.path, r, http.StatusOK)
				r.JSON(t, &login)
				lg.u.ID, lg.u.Access, lg.u.Refresh = login.User.ID, login.Access, login.Refresh
			}
			r := s.callJSON(t, "POST", p("/auth/refresh/"), "", map[string]string{"refresh": a.Refresh})
			check("refresh", r, http.StatusOK)
			r.JSON(t, &login)
			a.Access, a.Refresh = login.Access, login.Refresh

			r = s.callJSON(t, "POST", p("/create-chatroom/"), a.Access, map[string]any{"type": "group"})
			check("create-chatroom", r, http.StatusCreated)
			room := decodeChatroom(t, r.Body).ID
			check("join-chatroom", s.callJSON(t, "POST", p("/join-chatroom/"), b.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
			check("list-chatrooms", s.callJSON(t, "GET", p("/list-chatrooms/"), a.Access, nil), http.StatusOK)
			r = s.callJSON(t, "POST", p("/send-message/"), a.Access, map[string]any{"conversation_id": room, "text": "hi"})
			check("send-message", r, http.StatusCreated)
			msg := decodeMessage(t, r.Body).ID
			r = s.callMultipart(t, p("/send-message/"), b, []formPart{
				{name: "conversation_id", value: fmt.Sprint(room)},
				{name: "attachment_picture", file: "p.png", value: string(pngBytes(t, 3))},
			})
			check("send-message (multipart)", r, http.StatusCreated)
			pic := decodeMessage(t, r.Body)
			check("list-messages", s.callJSON(t, "GET", p("/list-messages/"), a.Access, nil), http.StatusOK)
			check("list-conversation-messages", s.callJSON(t, "GET", p("/list-conversation-messages/%d/", room), a.Access, nil), http.StatusOK)
			r = s.callJSON(t, "POST", p("/read-message/"), b.Access, map[string]any{"conversation_id": room, "message_ids": []int64{msg}})
			check("read-message", r, http.StatusOK)
			check("media", s.callJSON(t, "GET", p("%s", mediaPath(t, s, *pic.AttachmentPicture)), a.Access, nil), http.StatusOK)
			check("audit", s.callJSON(t, "GET", p("/audit/conversations/%d/", room), a.Access, nil), http.StatusOK)
			check("healthz", s.callJSON(t, "GET", p("/healthz/"), "", nil), http.StatusOK)
			check("readyz", s.callJSON(t, "GET", p("/readyz/"), "", nil), http.StatusOK)
			check("leave-chatroom", s.callJSON(t, "DELETE", p("/leave-chatroom/%d/", room), b.Access, nil), http.StatusOK)
			check("logout", s.callJSON(t, "POST", p("/auth/logout/"), a.Access, nil), http.StatusOK)
			check("logout alias", s.callJSON(t, "POST", p("/logout/"), b.Access, nil), http.StatusOK)
			wantUnauthorized(t, s.callJSON(t, "GET", p("/list-chatrooms/"), b.Access, nil))
		})
	}
}

// TestCompatibilityAliases covers the fields the original code used:
// send-message's conversation, join-chatroom's conversation, and the
// ignored sender and user fields.
func TestCompatibilityAliases(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)

	t.Run("send-message conversation", func(t *testing.T) {
		m := s.sendJSON(t, b, map[string]any{"conversation": room, "text": "via alias"})
		if m.Conversation != room || m.Sender != b.ID {
			t.Fatalf("message = %+v; want in room %d from %d", m, room, b.ID)
		}
	})
	t.Run("send-message ignores sender", func(t *testing.T) {
		m := s.sendJSON(t, b, map[string]any{"conversation_id": room, "text": "spoof", "sender": a.ID})
		if m.Sender != b.ID || !slices.Equal(m.Receivers, []int64{a.ID}) {
			t.Fatalf("sender = %d, receivers = %v; want the caller %d, receivers [%d]", m.Sender, m.Receivers, b.ID, a.ID)
		}
		listed := firstOf(s.conversationMessages(t, a, room, ""))
		if last := listed[len(listed)-1]; last.ID != m.ID || last.Sender != b.ID {
			t.Fatalf("listed %+v; want message %d from %d", last, m.ID, b.ID)
		}
	})
	t.Run("join-chatroom conversation ignores user", func(t *testing.T) {
		r := s.callJSON(t, "POST", "/join-chatroom/", c.Access, map[string]any{"conversation": room, "user": a.ID})
		wantStatus(t, r, http.StatusCreated)
		var mv struct{ ID, Conversation, User int64 }
		r.JSON(t, &mv)
		if mv.Conversation != room || mv.User != c.ID || mv.ID == 0 {
			t.Fatalf("membership = %s; want room %d, user %d", r.Body, room, c.ID)
		}
		got, _ := chatroomOf(s.chatrooms(t, c), room)
		if want := []int64{a.ID, b.ID, c.ID}; !slices.Equal(got.Members, want) {
			t.Fatalf("members = %v; want %v", got.Members, want)
		}
	})
	t.Run("create-chatroom ignores unknown fields", func(t *testing.T) {
		r := s.callJSON(t, "POST", "/create-chatroom/", a.Access, map[string]any{"created_by": b.ID, "id": 999, "colour": "red"})
		wantStatus(t, r, http.StatusCreated)
		if got := decodeChatroom(t, r.Body); got.CreatedBy != a.ID || got.ID == 999 {
			t.Fatalf("chatroom = %s; want created by %d with a new id", r.Body, a.ID)
		}
	})
}

// ---------------------------------------------------------------------------
// Chatrooms.

// TestChatrooms covers create-chatroom, join-chatroom, list-chatrooms and
// leave-chatroom, their documented errors, and read-your-writes for each.
func TestChatrooms(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *chatd.Config) { c.MaxGroup = 3 })
	a, b, c, d := s.newUser(), s.newUser(), s.newUser(), s.newUser()
	str := func(s string) *string { return &s }

	t.Run("create", func(t *testing.T) {
		tests := []struct {
			name string
			body any
			want chatroomJSON
		}{
			{"no body", nil, chatroomJSON{Type: "chat", Members: []int64{a.ID}}},
			{"empty object", map[string]any{}, chatroomJSON{Type: "chat", Members: []int64{a.ID}}},
			{"null fields", map[string]any{"name": nil, "description": nil, "type": nil, "members": nil},
				chatroomJSON{Type: "chat", Members: []int64{a.ID}}},
			{"chat with a member", map[string]any{"name": "Chatroom 1", "description": "This is a chatroom.", "members": []int64{b.ID}},
				chatroomJSON{Type: "chat", Members: []int64{a.ID, b.ID}, Name: str("Chatroom 1"), Description: str("This is a chatroom.")}},
			{"group, creator and duplicates ignored", map[string]any{"type": "group", "members": []int64{c.ID, b.ID, c.ID, a.ID}},
				chatroomJSON{Type: "group", Members: []int64{a.ID, b.ID, c.ID}}},
			{"ids as strings", map[string]any{"type": "group", "members": []string{fmt.Sprint(b.ID)}},
				chatroomJSON{Type: "group", Members: []int64{a.ID, b.ID}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := s.callJSON(t, "POST", "/create-chatroom/", a.Access, tt.body)
				wantStatus(t, r, http.StatusCreated)
				got := decodeChatroom(t, r.Body)
				if got.ID <= 0 || got.Type != tt.want.Type || !slices.Equal(got.Members, tt.want.Members) ||
					!equalPtr(got.Name, tt.want.Name) || !equalPtr(got.Description, tt.want.Description) ||
					got.CreatedBy != a.ID || got.CreatedAt != got.UpdatedAt {
					t.Fatalf("create-chatroom = %s; want %+v", r.Body, tt.want)
				}
				// Read-your-writes: every member lists it at once.
				for _, u := range []user{a, b, c} {
					listed, ok := chatroomOf(s.chatrooms(t, u), got.ID)
					if member := slices.Contains(got.Members, u.ID); ok != member {
						t.Fatalf("user %d lists room %d: %t; want %t", u.ID, got.ID, ok, member)
					}
					if ok && (!slices.Equal(listed.Members, got.Members) || listed.CreatedAt != got.CreatedAt) {
						t.Fatalf("listed %+v; want %+v", listed, got)
					}
				}
			})
		}
	})

	t.Run("create errors", func(t *testing.T) {
		tests := []struct {
			name string
			body any
			want map[string][]string
		}{
			{"bad type", map[string]any{"type": "x"}, map[string][]string{"type": {`"x" is not a valid choice.`}}},
			{"empty type", map[string]any{"type": ""}, map[string][]string{"type": {`"" is not a valid choice.`}}},
			{"unknown member", map[string]any{"members": []int64{999999}},
				map[string][]string{"members": {`Invalid pk "999999" - object does not exist.`}}},
			{"chat over two", map[string]any{"members": []int64{b.ID, c.ID}}, map[string][]string{"members": nil}},
			{"group over the cap", map[string]any{"type": "group", "members": []int64{b.ID, c.ID, d.ID}},
				map[string][]string{"members": {"A group can have at most 3 members."}}},
			{"name too long", map[string]any{"name": strings.Repeat("n", 256)}, map[string][]string{"name": nil}},
			{"members not a list", map[string]any{"members": 3}, map[string][]string{"members": nil}},
			{"name not a string", map[string]any{"name": 3}, map[string][]string{"name": nil}},
		}
		before := len(s.chatrooms(t, a))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantFields(t, s.callJSON(t, "POST", "/create-chatroom/", a.Access, tt.body), tt.want)
			})
		}
		if after := len(s.chatrooms(t, a)); after != before {
			t.Fatalf("rejected creates left %d rooms; want %d", after, before)
		}
	})

	t.Run("join", func(t *testing.T) {
		s := s.with(t)
		chat := s.callJSON(t, "POST", "/create-chatroom/", a.Access, nil)
		room := decodeChatroom(t, chat.Body)

		r := s.callJSON(t, "POST", "/join-chatroom/", b.Access, map[string]any{"chatroom_id": room.ID})
		wantStatus(t, r, http.StatusCreated)
		var first struct{ ID, Conversation, User int64 }
		r.JSON(t, &first)
		if first.Conversation != room.ID || first.User != b.ID {
			t.Fatalf("join = %s; want room %d, user %d", r.Body, room.ID, b.ID)
		}
		listed, ok := chatroomOf(s.chatrooms(t, b), room.ID)
		if !ok || !slices.Equal(listed.Members, []int64{a.ID, b.ID}) {
			t.Fatalf("after join, b lists %+v (found %t); want members [%d %d]", listed, ok, a.ID, b.ID)
		}
		if listed.UpdatedAt <= room.UpdatedAt {
			t.Fatalf("updated_at = %s after join; want later than %s", listed.UpdatedAt, room.UpdatedAt)
		}

		r = s.callJSON(t, "POST", "/join-chatroom/", b.Access, map[string]any{"chatroom_id": room.ID})
		wantStatus(t, r, http.StatusOK)
		var again struct{ ID, Conversation, User int64 }
		r.JSON(t, &again)
		if again != first {
			t.Fatalf("join again = %s; want the same membership %+v", r.Body, first)
		}

		// A direct chat of two others is not full but closed: 403.
		wantDetail(t, s.callJSON(t, "POST", "/join-chatroom/", c.Access, map[string]any{"chatroom_id": room.ID}),
			http.StatusForbidden, "Only its two participants may join a direct chat")
		wantDetail(t, s.callJSON(t, "POST", "/join-chatroom/", c.Access, map[string]any{"chatroom_id": 999999}),
			http.StatusNotFound, "")
		wantFields(t, s.callJSON(t, "POST", "/join-chatroom/", c.Access, map[string]any{}),
			map[string][]string{"chatroom_id": {"This field is required."}})
		wantFields(t, s.callJSON(t, "POST", "/join-chatroom/", c.Access, map[string]any{"chatroom_id": "abc"}),
			map[string][]string{"chatroom_id": nil})

		group := s.room(a, b) // cap 3
		wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", c.Access, map[string]any{"chatroom_id": group}), http.StatusCreated)
		wantDetail(t, s.callJSON(t, "POST", "/join-chatroom/", d.Access, map[string]any{"chatroom_id": group}),
			http.StatusBadRequest, "Chatroom is full")
	})

	t.Run("leave", func(t *testing.T) {
		s := s.with(t)
		room := s.room(a, b)
		wantDetail(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), c.Access, nil),
			http.StatusBadRequest, "User is not a member of the conversation")
		for _, path := range []string{"/leave-chatroom/999999/", "/leave-chatroom/abc/", "/leave-chatroom/0/"} {
			wantDetail(t, s.callJSON(t, "DELETE", path, b.Access, nil), http.StatusNotFound, "")
		}
		before, _ := chatroomOf(s.chatrooms(t, a), room)
		r := s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), b.Access, nil)
		wantStatus(t, r, http.StatusOK)
		if _, ok := chatroomOf(s.chatrooms(t, b), room); ok {
			t.Fatalf("b still lists room %d after leaving", room)
		}
		after, _ := chatroomOf(s.chatrooms(t, a), room)
		if !slices.Equal(after.Members, []int64{a.ID}) || after.UpdatedAt <= before.UpdatedAt {
			t.Fatalf("after leave: members %v, updated_at %s; want [%d] and later than %s", after.Members, after.UpdatedAt, a.ID, before.UpdatedAt)
		}
		wantDetail(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), b.Access, nil),
			http.StatusBadRequest, "User is not a member of the conversation")
		wantDetail(t, s.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil),
			http.StatusForbidden, "")
		// Coming back is a new membership.
		wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", b.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
	})

	t.Run("list order", func(t *testing.T) {
		s := s.with(t)
		u := s.newUser()
		first, second := s.room(u), s.room(u)
		order := func() []int64 {
			var out []int64
			for _, r := range s.chatrooms(t, u) {
				out = append(out, r.ID)
			}
			return out
		}
		if got, want := order(), []int64{second, first}; !slices.Equal(got, want) {
			t.Fatalf("order = %v; want newest creation first %v", got, want)
		}
		m := s.send(u, first, "wake up")
		if got, want := order(), []int64{first, second}; !slices.Equal(got, want) {
			t.Fatalf("order after a message = %v; want the active room first %v", got, want)
		}
		rooms := s.chatrooms(t, u)
		if rooms[0].LastMessage == nil || rooms[0].LastMessage.ID != m || rooms[1].LastMessage != nil {
			t.Fatalf("last_message = %+v, %+v; want message %d, then none", rooms[0].LastMessage, rooms[1].LastMessage, m)
		}
	})
}

func equalPtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// ---------------------------------------------------------------------------
// Authorization matrix.

// TestAuthorizationMatrix checks that a non-member gets 403 and a missing
// room 404 on every endpoint about one room.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	owner, member, stranger := s.newUser(), s.newUser(), s.newUser()
	room := s.room(owner, member)
	msg := s.send(owner, room, "secret")
	pic := s.sendMultipart(t, owner, room, "", []formPart{{name: "attachment_picture", file: "p.gif", value: string(gifBytes(t))}})
	media := mediaPath(t, s, *pic.AttachmentPicture)
	const missing = 999999

	type request struct {
		method, path string
		body         any
	}
	endpoints := []struct {
		name             string
		asMember, onRoom request
		missing          *request // nil: not about a room id
	}{
		{
			name:     "list-conversation-messages",
			onRoom:   request{"GET", fmt.Sprintf("/list-conversation-messages/%d/", room), nil},
			asMember: request{"GET", fmt.Sprintf("/list-conversation-messages/%d/", room), nil},
			missing:  &request{"GET", fmt.Sprintf("/list-conversation-messages/%d/", missing), nil},
		},
		{
			name:     "send-message",
			onRoom:   request{"POST", "/send-message/", map[string]any{"conversation_id": room, "text": "let me in"}},
			asMember: request{"POST", "/send-message/", map[string]any{"conversation_id": room, "text": "hello"}},
			missing:  &request{"POST", "/send-message/", map[string]any{"conversation_id": missing, "text": "anyone?"}},
		},
		{
			name:     "read-message",
			onRoom:   request{"POST", "/read-message/", map[string]any{"conversation_id": room, "message_ids": []int64{msg}}},
			asMember: request{"POST", "/read-message/", map[string]any{"conversation_id": room, "message_ids": []int64{msg}}},
			missing:  &request{"POST", "/read-message/", map[string]any{"conversation_id": missing, "message_ids": []int64{msg}}},
		},
		{
			name:     "audit",
			onRoom:   request{"GET", fmt.Sprintf("/audit/conversations/%d/", room), nil},
			asMember: request{"GET", fmt.Sprintf("/audit/conversations/%d/", room), nil},
			missing:  &request{"GET", fmt.Sprintf("/audit/conversations/%d/", missing), nil},
		},
		{
			name:     "media",
			onRoom:   request{"GET", media, nil},
			asMember: request{"GET", media, nil},
		},
		{
			name:    "join-chatroom",
			missing: &request{"POST", "/join-chatroom/", map[string]any{"chatroom_id": missing}},
		},
		{
			name:    "leave-chatroom",
			missing: &request{"DELETE", fmt.Sprintf("/leave-chatroom/%d/", missing), nil},
		},
	}
	for _, e := range endpoints {
		t.Run(e.name, func(t *testing.T) {
			if e.onRoom.method != "" {
				wantDetail(t, s.callJSON(t, e.onRoom.method, e.onRoom.path, stranger.Access, e.onRoom.body), http.StatusForbidden, "")
				if r := s.callJSON(t, e.asMember.method, e.asMember.path, member.Access, e.asMember.body); r.Status >= 300 {
					t.Fatalf("as a member: status = %d; want success (body %s)", r.Status, r.Body)
				}
			}
			if e.missing != nil {
				wantDetail(t, s.callJSON(t, e.missing.method, e.missing.path, member.Access, e.missing.body), http.StatusNotFound, "Chatroom not found")
			}
		})
	}
	// Nothing the stranger tried left a trace.
	listed := firstOf(s.conversationMessages(t, owner, room, ""))
	for _, m := range listed {
		if m.Sender == stranger.ID || slices.Contains(m.ReadBy, stranger.ID) {
			t.Fatalf("stranger's request changed message %+v", m)
		}
	}
}

// ---------------------------------------------------------------------------
// Generic errors.

// TestErrorStatuses covers 404 (no route), 405, 415, 400 for bad bodies and
// 413 for oversized JSON bodies, which must store nothing.
func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)

	t.Run("404 no route", func(t *testing.T) {
		for _, path := range []string{"/nope/", "/list-conversation-messages/", "/auth/"} {
			wantDetail(t, s.callJSON(t, "GET", path, a.Access, nil), http.StatusNotFound, "")
		}
	})

	t.Run("405", func(t *testing.T) {
		tests := []struct{ method, path, allowed string }{
			{"GET", "/auth/register/", "POST"}, {"GET", "/auth/login/", "POST"}, {"GET", "/auth/refresh/", "POST"},
			{"GET", "/auth/logout/", "POST"}, {"GET", "/create-chatroom/", "POST"}, {"GET", "/join-chatroom/", "POST"},
			{"POST", "/list-chatrooms/", "GET"}, {"POST", "/leave-chatroom/1/", "DELETE"}, {"GET", "/leave-chatroom/1/", "DELETE"},
			{"GET", "/send-message/", "POST"}, {"PUT", "/send-message/", "POST"}, {"DELETE", "/list-messages/", "GET"},
			{"POST", "/list-conversation-messages/1/", "GET"}, {"GET", "/read-message/", "POST"}, {"POST", "/healthz/", "GET"},
			{"POST", "/readyz", "GET"}, {"PATCH", "/create-chatroom", "POST"}, {"POST", "/audit/conversations/1/", "GET"},
		}
		for _, tt := range tests {
			t.Run(tt.method+" "+tt.path, func(t *testing.T) {
				r := s.callJSON(t, tt.method, tt.path, a.Access, nil)
				wantDetail(t, r, http.StatusMethodNotAllowed, "")
				if allow := r.Header.Get("Allow"); !slices.Contains(strings.Split(allow, ", "), tt.allowed) {
					t.Fatalf("Allow = %q; want it to list %s", allow, tt.allowed)
				}
			})
		}
	})

	t.Run("415", func(t *testing.T) {
		for _, tt := range []struct{ path, ct string }{
			{"/create-chatroom/", "text/plain"},
			{"/send-message/", "text/plain"},
			{"/send-message/", "application/x-www-form-urlencoded"},
			{"/join-chatroom/", "application/xml"},
			{"/read-message/", "text/plain"},
		} {
			t.Run(tt.path+" "+tt.ct, func(t *testing.T) {
				body := fmt.Sprintf(`{"conversation_id": %d, "chatroom_id": %d, "text": "x", "message_ids": [1]}`, room, room)
				r := s.call(t, "POST", tt.path, strings.NewReader(body), "Content-Type", tt.ct, "Authorization", "Bearer "+b.Access)
				wantDetail(t, r, http.StatusUnsupportedMediaType, "")
			})
		}
		if got := firstOf(s.conversationMessages(t, a, room, "")); len(got) != 0 {
			t.Fatalf("415 requests stored %d messages; want 0", len(got))
		}
	})

	t.Run("400 bad bodies", func(t *testing.T) {
		for _, tt := range []struct {
			name, path, body string
			fields           map[string][]string // nil: a detail
		}{
			{"malformed JSON", "/send-message/", `{"conversation_id": `, nil},
			{"not an object", "/send-message/", `[1, 2]`, nil},
			{"empty message", "/send-message/", fmt.Sprintf(`{"conversation_id": %d}`, room), nil},
			{"blank text", "/send-message/", fmt.Sprintf(`{"conversation_id": %d, "text": ""}`, room), nil},
			{"missing conversation", "/send-message/", `{"text": "hi"}`, map[string][]string{"conversation_id": {"This field is required."}}},
			{"null conversation", "/send-message/", `{"conversation_id": null, "text": "hi"}`, map[string][]string{"conversation_id": nil}},
			{"text not a string", "/send-message/", fmt.Sprintf(`{"conversation_id": %d, "text": 5}`, room), map[string][]string{"text": nil}},
			{"text over 64 KiB", "/send-message/", fmt.Sprintf(`{"conversation_id": %d, "text": %q}`, room, strings.Repeat("x", 64<<10+1)),
				map[string][]string{"text": nil}},
			{"text with NUL", "/send-message/", fmt.Sprintf(`{"conversation_id": %d, "text": "a\u0000b"}`, room), map[string][]string{"text": nil}},
			{"room name with NUL", "/create-chatroom/", `{"name": "a\u0000b"}`, map[string][]string{"name": nil}},
			{"description with NUL", "/create-chatroom/", `{"description": "a\u0000b"}`, map[string][]string{"description": nil}},
			{"read without ids", "/read-message/", fmt.Sprintf(`{"conversation_id": %d}`, room), map[string][]string{"message_ids": {"This field is required."}}},
			{"read ids not a list", "/read-message/", fmt.Sprintf(`{"conversation_id": %d, "message_ids": 1}`, room), map[string][]string{"message_ids": nil}},
			{"bad Idempotency-Key", "", "", nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var r response
				if tt.path == "" {
					r = s.callJSON(t, "POST", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "k"},
						"Idempotency-Key", strings.Repeat("k", 256))
				} else {
					r = s.call(t, "POST", tt.path, strings.NewReader(tt.body), "Content-Type", "application/json", "Authorization", "Bearer "+a.Access)
				}
				if tt.fields == nil {
					wantDetail(t, r, http.StatusBadRequest, "")
				} else {
					wantFields(t, r, tt.fields)
				}
			})
		}
		if got := firstOf(s.conversationMessages(t, a, room, "")); len(got) != 0 {
			t.Fatalf("rejected sends stored %d messages; want 0", len(got))
		}
		// The text limit itself is allowed.
		m := s.sendJSON(t, a, map[string]any{"conversation_id": room, "text": strings.Repeat("é", 32<<10)})
		if len(m.Text) != 64<<10 {
			t.Fatalf("text of %d bytes; want 64 KiB", len(m.Text))
		}
	})

	t.Run("413", func(t *testing.T) {
		stored := len(firstOf(s.conversationMessages(t, a, room, "")))
		big := strings.Repeat("x", 1<<20)
		tests := []struct {
			name, path string
			token      string
			body       any
		}{
			{"register", "/auth/register/", "", map[string]string{"username": "huge_user", "password": "password-1", "pad": big}},
			{"login", "/auth/login/", "", map[string]string{"username": a.Name, "password": a.Password, "pad": big}},
			{"create-chatroom", "/create-chatroom/", a.Access, map[string]any{"name": "big", "description": big}},
			{"join-chatroom", "/join-chatroom/", a.Access, map[string]any{"chatroom_id": room, "pad": big}},
			{"send-message", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": big}},
			{"send-message small text", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "x", "pad": big}},
			{"read-message", "/read-message/", b.Access, map[string]any{"conversation_id": room, "message_ids": []int64{1}, "pad": big}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantDetail(t, s.callJSON(t, "POST", tt.path, tt.token, tt.body), http.StatusRequestEntityTooLarge, "")
			})
		}
		t.Run("chunked", func(t *testing.T) {
			// No Content-Length: the limit must hold while reading.
			body := io.MultiReader(strings.NewReader(fmt.Sprintf(`{"conversation_id": %d, "text": "`, room)),
				strings.NewReader(big), strings.NewReader(`"}`))
			r := s.call(t, "POST", "/send-message/", io.NopCloser(body), "Content-Type", "application/json", "Authorization", "Bearer "+a.Access)
			wantDetail(t, r, http.StatusRequestEntityTooLarge, "")
		})
		// Nothing stored.
		wantUnauthorized(t, s.callJSON(t, "POST", "/auth/login/", "", map[string]string{"username": "huge_user", "password": "password-1"}))
		if got := len(firstOf(s.conversationMessages(t, a, room, ""))); got != stored {
			t.Fatalf("413 sends stored messages: %d; want %d", got, stored)
		}
		if rooms := s.chatrooms(t, a); len(rooms) != 1 {
			t.Fatalf("413 create stored a room: %d rooms; want 1", len(rooms))
		}
		// A body at the limit is fine.
		text := strings.Repeat("y", 1000)
		pad := strings.Repeat("p", 1<<20-len(fmt.Sprintf(`{"conversation_id":%d,"pad":"","text":%q}`, room, text)))
		body := fmt.Sprintf(`{"conversation_id":%d,"pad":"%s","text":%q}`, room, pad, text)
		if len(body) != 1<<20 {
			t.Fatalf("body is %d bytes; want exactly 1 MiB", len(body))
		}
		r := s.call(t, "POST", "/send-message/", strings.NewReader(body), "Content-Type", "application/json", "Authorization", "Bearer "+a.Access)
		wantStatus(t, r, http.StatusCreated)
	})
}

// TestInternalErrorHidesCause breaks the read model under a running server:
// the client gets a generic 500, never the database's message.
func TestInternalErrorHidesCause(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := s.newUser()
	room := s.room(a)
	if _, err := s.Pool().Exec(t.Context(), `ALTER TABLE readmodel.messages RENAME TO messages_gone`); err != nil {
		t.Fatal(err)
	}
	r := s.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/", room), a.Access, nil)
	wantDetail(t, r, http.StatusInternalServerError, "A server error occurred.")
	for _, leak := range []string{"messages", "relation", "SQL", "exist"} {
		if bytes.Contains(r.Body, []byte(leak)) {
			t.Fatalf("500 body %s leaks %q", r.Body, leak)
		}
	}
	if _, err := s.Pool().Exec(t.Context(), `ALTER TABLE readmodel.messages_gone RENAME TO messages`); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Operations.

// TestOperations covers /healthz, /readyz and the audit trail.
func TestOperations(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()

	for _, path := range []string{"/healthz", "/healthz/"} {
		r := s.callJSON(t, "GET", path, "", nil)
		wantStatus(t, r, http.StatusOK)
		if got := r.text(); got != `{"status":"ok"}` {
			t.Fatalf("%s = %s", path, got)
		}
	}
	for _, path := range []string{"/readyz", "/readyz/"} {
		r := s.callJSON(t, "GET", path, "", nil)
		wantStatus(t, r, http.StatusOK)
		var ready struct{ Ready bool }
		r.JSON(t, &ready)
		if !ready.Ready {
			t.Fatalf("%s = %s; want ready", path, r.Body)
		}
	}

	room := s.room(a)
	wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", b.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
	m1 := s.send(b, room, "one")
	m2 := s.send(a, room, "two")
	wantStatus(t, s.callJSON(t, "POST", "/read-message/", a.Access, map[string]any{"conversation_id": room, "message_ids": []int64{m1}}), http.StatusOK)
	wantStatus(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), b.Access, nil), http.StatusOK)

	r := s.callJSON(t, "GET", fmt.Sprintf("/audit/conversations/%d/", room), a.Access, nil)
	wantStatus(t, r, http.StatusOK)
	var events []struct {
		Type     string          `json:"type"`
		Data     json.RawMessage `json:"data"`
		Metadata json.RawMessage `json:"metadata"`
		Position string          `json:"position"`
		Time     string          `json:"time"`
	}
	r.JSON(t, &events)
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
		if e.Position == "" || !timeRE.MatchString(e.Time) || len(e.Data) == 0 || len(e.Metadata) == 0 {
			t.Fatalf("audit event %+v lacks position, time, data or metadata", e)
		}
	}
	want := []string{"chat.conversation_created", "chat.member_joined", "chat.message_sent", "chat.message_sent", "chat.member_left"}
	if !slices.Equal(types, want) {
		t.Fatalf("audit types = %q; want %q", types, want)
	}
	var sent []struct {
		MessageID int64 `json:"message_id"`
		SenderID  int64 `json:"sender_id"`
	}
	for _, e := range events[2:4] {
		var d struct {
			MessageID int64 `json:"message_id"`
			SenderID  int64 `json:"sender_id"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, d)
	}
	if sent[0].MessageID != m1 || sent[1].MessageID != m2 || sent[0].SenderID != b.ID {
		t.Fatalf("audit messages = %+v; want %d from %d, then %d", sent, m1, b.ID, m2)
	}
	var md struct {
		ActorID int64 `json:"actor_id"`
	}
	if err := json.Unmarshal(events[1].Metadata, &md); err != nil || md.ActorID != b.ID {
		t.Fatalf("join metadata = %s; want actor %d", events[1].Metadata, b.ID)
	}
	// b left: the audit trail is for members only.
	wantDetail(t, s.callJSON(t, "GET", fmt.Sprintf("/audit/conversations/%d/", room), b.Access, nil), http.StatusForbidden, "")
	wantUnauthorized(t, s.callJSON(t, "GET", fmt.Sprintf("/audit/conversations/%d/", room), "", nil))
}
