package chatd_test

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
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

// login posts a login from the given client address (the server believes
// X-Forwarded-For from 127.0.0.1 in these tests). Safe for goroutines.
func (s *testServer) loginFrom(addr, username, password string) (response, error) {
	return s.tryJSON("POST", "/auth/login/", "", map[string]string{"username": username, "password": password},
		"X-Forwarded-For", addr)
}

func behindLocalProxy(cfg *chatd.Config) {
	_, local, _ := net.ParseCIDR("127.0.0.1/32")
	cfg.TrustedProxies = []*net.IPNet{local}
}

// Concurrent guesses cannot all pass the throttle's check before any is
// counted: of 60 wrong guesses at once at one username from one address,
// exactly the per-(username, address) limit reach the password check
// (401); the rest are 429, and so is the right password after them. (A
// right password among them would reset the username's counters when it
// succeeds: the guesser has it then.)
func TestLoginThrottleConcurrentGuesses(t *testing.T) {
	t.Parallel()
	s := startServer(t, behindLocalProxy)
	victim := s.newUser()
	const guesses, perUserAddress = 60, 5 // the server's default

	checked := 0
	for _, st := range s.concurrentLogins(t, guesses, "198.51.100.1", func(i int) (string, string) {
		return victim.Name, fmt.Sprintf("guess-%d", i)
	}) {
		switch st {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("status %d; want 401 or 429", st)
		}
	}
	if checked != perUserAddress {
		t.Fatalf("%d of %d concurrent guesses reached the password check; want %d", checked, guesses, perUserAddress)
	}
	r, err := s.loginFrom("198.51.100.1", victim.Name, victim.Password)
	if err != nil {
		t.Fatal(err)
	}
	wantDetail(t, r, http.StatusTooManyRequests, "")

	// The same at many usernames from one address: at most the
	// per-address limit get through.
	const perAddress = 50
	checked = 0
	for _, st := range s.concurrentLogins(t, guesses, "198.51.100.2", func(i int) (string, string) {
		return fmt.Sprintf("nobody_%d", i), "wrong-password"
	}) {
		if st != http.StatusTooManyRequests {
			checked++
		}
	}
	if checked > perAddress {
		t.Fatalf("%d of %d concurrent logins from one address were let through; want at most %d", checked, guesses, perAddress)
	}
}

// concurrentLogins sends n logins at once from addr, the i-th with the
// username and password attempt(i) gives, and returns their statuses.
func (s *testServer) concurrentLogins(t *testing.T, n int, addr string, attempt func(i int) (username, password string)) []int {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			username, password := attempt(i)
			r, err := s.loginFrom(addr, username, password)
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.Status
		})
	}
	wg.Wait()
	return statuses
}

// Failures from other addresses do not lock a user out: an attacker who
// fails at alice's password from many addresses slows her username down
// (one attempt per delay, up to LoginMaxDelay), and alice, from an address
// that has not failed, gets in after at most that delay. The attacker's
// own addresses stay refused.
func TestLoginNoTargetedLockout(t *testing.T) {
	t.Parallel()
	const maxDelay = 2 * time.Second
	s := startServer(t, behindLocalProxy, func(cfg *chatd.Config) { cfg.LoginMaxDelay = maxDelay })
	alice := s.newUser()

	// Five failures from each of six addresses: 30 failures, three times
	// the per-username allowance of 10.
	for a := range 6 {
		addr := fmt.Sprintf("203.0.113.%d", a+1)
		for i := range 5 {
			r, err := s.loginFrom(addr, alice.Name, fmt.Sprintf("guess-%d-%d", a, i))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
				t.Fatalf("attacker's guess = %d; want 401 or 429", r.Status)
			}
		}
		// That address has used up its tries at alice: refused for the
		// rest of the window, even with the right password.
		r, err := s.loginFrom(addr, alice.Name, alice.Password)
		if err != nil {
			t.Fatal(err)
		}
		wantDetail(t, r, http.StatusTooManyRequests, "")
	}

	// Alice from home: in at once, or told to come back within the
	// delay, and then in.
	for try := 0; ; try++ {
		r, err := s.loginFrom("192.0.2.10", alice.Name, alice.Password)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == http.StatusOK {
			break
		}
		wantDetail(t, r, http.StatusTooManyRequests, "")
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 1 || time.Duration(ra)*time.Second > maxDelay {
			t.Fatalf("alice's login: Retry-After %q; want 1 to %v seconds", r.Header.Get("Retry-After"), maxDelay.Seconds())
		}
		if try == 3 {
			t.Fatalf("alice still refused after %d waits of Retry-After", try+1)
		}
		time.Sleep(time.Duration(ra) * time.Second) // what a client told Retry-After does
	}
}
