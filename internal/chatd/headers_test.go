package chatd_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Every answer tells browsers not to guess its type, and answers that carry
// tokens are kept out of every cache.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	tokens := map[string]response{
		"register": s.do("POST", "/auth/register/", "", map[string]string{"username": "headers_user", "password": "correct-horse-1"}),
		"login":    s.do("POST", "/auth/login/", "", map[string]string{"username": "headers_user", "password": "correct-horse-1"}),
	}
	var pair struct {
		Refresh string `json:"refresh"`
	}
	tokens["login"].JSON(t, &pair)
	tokens["refresh"] = s.do("POST", "/auth/refresh/", "", map[string]string{"refresh": pair.Refresh})
	for name, r := range tokens {
		if r.Status >= 300 {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q; want no-store", name, got)
		}
	}
	others := map[string]response{
		"list":      s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil),
		"not found": s.do("GET", "/no-such-path/", "", nil),
		"error":     s.do("POST", "/send-message/", a.Access, map[string]any{"conversation_id": room}),
		"healthz":   s.do("GET", "/healthz", "", nil),
	}
	for name, r := range tokens {
		others[name] = r
	}
	for name, r := range others {
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s (%d): X-Content-Type-Options %q; want nosniff", name, r.Status, got)
		}
	}
	if r := others["list"]; r.Status != http.StatusOK || r.Header.Get("Cache-Control") == "no-store" {
		t.Errorf("list: %d, Cache-Control %q; want 200 without no-store", r.Status, r.Header.Get("Cache-Control"))
	}
}

// A client's X-Request-Id is kept only when short and well formed: it is
// stored with every event the request causes.
func TestClientRequestIDIsBounded(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	cases := []struct {
		sent string
		kept bool
	}{
		{"client-req_1.2", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{strings.Repeat("x", 1<<16), false},
		{"two words", false},
		{`a" level=ERROR msg="forged`, false},
	}
	for i, c := range cases {
		r := s.do("POST", "/auth/register/", "", map[string]string{"username": fmt.Sprintf("rid_user_%d", i), "password": "correct-horse-1"},
			"X-Request-Id", c.sent)
		if r.Status != http.StatusCreated {
			t.Fatalf("register with X-Request-Id %.40q: %d %s", c.sent, r.Status, r.Body)
		}
		got := r.Header.Get("X-Request-Id")
		if c.kept && got != c.sent {
			t.Errorf("X-Request-Id %.40q answered as %.40q; want it kept", c.sent, got)
		}
		if !c.kept && (got == c.sent || got == "" || len(got) > 64) {
			t.Errorf("X-Request-Id %.40q answered as %.40q; want a generated id", c.sent, got)
		}
	}
}

// A username longer than any account's is refused before the login
// throttle looks it up (an 8 KB one once overflowed its index row).
func TestLoginBoundsTheUsername(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	long := s.do("POST", "/auth/login/", "", map[string]string{"username": strings.Repeat("é", 8<<10), "password": "x"})
	if want := `{"username":["Ensure this field has no more than 150 characters."]}`; long.Status != http.StatusBadRequest || long.text() != want {
		t.Errorf("login with an 8 KB username: %d %s; want 400 %s", long.Status, long.Body, want)
	}
	if r := s.do("POST", "/auth/login/", "", map[string]string{"username": strings.Repeat("u", 150), "password": "x"}); r.Status != http.StatusUnauthorized {
		t.Errorf("login with a 150-character unknown username: %d %s; want 401", r.Status, r.Body)
	}
}
