package chatd_test

import (
	"fmt"
	"net/http"
	"testing"
)

// The per-address login throttle counts the connection's address: a client
// cannot spread its failures over made-up X-Forwarded-For addresses.
func TestLoginThrottleIgnoresForwardedFor(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const perAddress = 50 // the server's default
	for i := range perAddress {
		r := s.do("POST", "/auth/login/", "", map[string]string{"username": fmt.Sprintf("nobody%d", i), "password": "wrong-password"},
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("failed login %d = %d; want 401", i, r.Status)
		}
	}
	r := s.do("POST", "/auth/login/", "", map[string]string{"username": "someone-else", "password": "wrong-password"},
		"X-Forwarded-For", "198.51.100.7")
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("login after %d failures from one address = %d (Retry-After %q); want 429 with Retry-After", perAddress, r.Status, r.Header.Get("Retry-After"))
	}
}
