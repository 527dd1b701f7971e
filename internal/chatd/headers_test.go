package chatd_test

import (
	"fmt"
	"net/http"
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
