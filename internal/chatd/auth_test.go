package chatd_test

// Auth (API.md section 2): register, login, refresh, logout, and every way
// a request can be unauthenticated.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/evchat/evchat/internal/chatd"
)

func TestRegister(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	tests := []struct {
		name   string
		body   any
		fields map[string][]string // nil: 201
	}{
		{"ok", map[string]string{"username": "alice", "password": "s3cret-pass"}, nil},
		{"all allowed characters", map[string]string{"username": "a.b+c-d_e@f1", "password": "s3cret-pass"}, nil},
		{"unicode letters", map[string]string{"username": "Zoë_Ωmega", "password": "s3cret-pass"}, nil},
		{"150 characters", map[string]string{"username": strings.Repeat("l", 150), "password": "s3cret-pass"}, nil},
		{"password over bcrypt's 72 bytes", map[string]string{"username": "long_pass", "password": strings.Repeat("p", 72) + "-tail"}, nil},
		{"password with NUL", map[string]string{"username": "nul_pass", "password": "pass\x00word"}, nil},
		{"ignored fields", map[string]any{"username": "bob", "password": "s3cret-pass", "id": 99, "is_staff": true}, nil},
		{"duplicate", map[string]string{"username": "alice", "password": "other-pass1"},
			map[string][]string{"username": {"A user with that username already exists."}}},
		{"duplicate ignoring case", map[string]string{"username": "ALICE", "password": "other-pass1"},
			map[string][]string{"username": {"A user with that username already exists."}}},
		{"151 characters", map[string]string{"username": strings.Repeat("l", 151), "password": "s3cret-pass"}, map[string][]string{"username": nil}},
		{"bad characters", map[string]string{"username": "no spaces", "password": "s3cret-pass"}, map[string][]string{"username": nil}},
		{"slash", map[string]string{"username": "a/b", "password": "s3cret-pass"}, map[string][]string{"username": nil}},
		{"short password", map[string]string{"username": "carol", "password": "short1"}, map[string][]string{"password": nil}},
		{"numeric password", map[string]string{"username": "carol", "password": "1234567890"}, map[string][]string{"password": nil}},
		{"missing fields", map[string]string{}, map[string][]string{"username": {"This field is required."}, "password": {"This field is required."}}},
		{"blank fields", map[string]string{"username": "", "password": " "}, map[string][]string{"username": nil, "password": nil}},
		{"null username", map[string]any{"username": nil, "password": "s3cret-pass"}, map[string][]string{"username": nil}},
		{"no body", nil, map[string][]string{"username": nil, "password": nil}},
	}
	// Sequential: "duplicate" relies on "ok".
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.callJSON(t, "POST", "/auth/register/", "", tt.body)
			if tt.fields != nil {
				wantFields(t, r, tt.fields)
				return
			}
			wantStatus(t, r, http.StatusCreated)
			wantObject(t, r.Body, []string{"id", "username"})
			var got userJSON
			r.JSON(t, &got)
			var want string
			switch b := tt.body.(type) {
			case map[string]string:
				want = b["username"]
			case map[string]any:
				want = b["username"].(string)
			}
			if got.ID <= 0 || got.Username != want {
				t.Fatalf("register = %s; want a new id and username %q", r.Body, want)
			}
		})
	}
	// Long passwords are hashed whole: bcrypt alone would ignore the tail.
	long := strings.Repeat("p", 72)
	s.login(user{Name: "long_pass", Password: long + "-tail"})
	s.login(user{Name: "nul_pass", Password: "pass\x00word"})
	wantDetail(t, s.callJSON(t, "POST", "/auth/login/", "", map[string]string{"username": "long_pass", "password": long}),
		http.StatusUnauthorized, "Invalid username or password")
	wantDetail(t, s.callJSON(t, "POST", "/auth/login/", "", map[string]string{"username": "long_pass", "password": long + "-other"}),
		http.StatusUnauthorized, "Invalid username or password")

	// A duplicate allocates nothing visible: the next user gets the next id.
	var first, next userJSON
	s.callJSON(t, "POST", "/auth/register/", "", map[string]string{"username": "dave", "password": "s3cret-pass"}).JSON(t, &first)
	wantStatus(t, s.callJSON(t, "POST", "/auth/register/", "", map[string]string{"username": "Dave", "password": "s3cret-pass"}), http.StatusBadRequest)
	s.callJSON(t, "POST", "/auth/register/", "", map[string]string{"username": "erin", "password": "s3cret-pass"}).JSON(t, &next)
	if next.ID <= first.ID {
		t.Fatalf("ids %d then %d; want ascending", first.ID, next.ID)
	}
}

// TestRegisterConcurrentDuplicates registers one name from many goroutines
// at once: exactly one succeeds.
func TestRegisterConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const n = 8
	statuses := make(chan int, n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			r, err := s.tryJSON("POST", "/auth/register/", "", map[string]string{"username": fmt.Sprintf("Race%c", "Rr"[i%2]), "password": "s3cret-pass"})
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- r.Status
		}()
	}
	for range n {
		<-done
	}
	close(statuses)
	created := 0
	for st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusBadRequest:
		default:
			t.Errorf("status = %d; want 201 or 400", st)
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d registrations of one name succeeded; want 1", created, n)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser()

	t.Run("ok", func(t *testing.T) {
		r := s.callJSON(t, "POST", "/auth/login/", "", map[string]string{"username": u.Name, "password": u.Password})
		wantStatus(t, r, http.StatusOK)
		wantObject(t, r.Body, []string{"message", "access", "refresh", "user"})
		var got struct {
			Message, Access, Refresh string
			User                     json.RawMessage
		}
		r.JSON(t, &got)
		wantKeyOrder(t, r.Body, "message", "access", "refresh", "user")
		wantObject(t, got.User, []string{"id", "username"})
		var me userJSON
		if err := json.Unmarshal(got.User, &me); err != nil {
			t.Fatal(err)
		}
		if got.Message != "Login successful" || me != (userJSON{u.ID, u.Name}) || got.Access == got.Refresh {
			t.Fatalf("login = %s; want Login successful for %d %q", r.Body, u.ID, u.Name)
		}
		for _, tok := range []string{got.Access, got.Refresh} {
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("token %q is not a JWT", tok)
			}
		}
		wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", got.Access, nil), http.StatusOK)
	})

	tests := []struct {
		name   string
		body   any
		fields map[string][]string // nil: 401 Invalid username or password
	}{
		{"wrong password", map[string]string{"username": u.Name, "password": "wrong-password"}, nil},
		{"unknown user", map[string]string{"username": "nobody_here", "password": u.Password}, nil},
		{"missing password", map[string]string{"username": u.Name}, map[string][]string{"password": {"This field is required."}}},
		{"missing everything", map[string]string{}, map[string][]string{"username": nil, "password": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.callJSON(t, "POST", "/auth/login/", "", tt.body)
			if tt.fields != nil {
				wantFields(t, r, tt.fields)
				return
			}
			wantDetail(t, r, http.StatusUnauthorized, "Invalid username or password")
		})
	}
}

// TestLoginThrottle: repeated failed logins for one username get 429 with
// Retry-After, even with the right password; other users are unaffected.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	victim, other := s.newUser(), s.newUser()

	for _, name := range []string{victim.Name, "no_such_user"} {
		t.Run(name, func(t *testing.T) {
			var r response
			fails := 0
			for ; fails < 20; fails++ {
				r = s.callJSON(t, "POST", "/auth/login/", "", map[string]string{"username": name, "password": "guess-" + strconv.Itoa(fails)})
				if r.Status != http.StatusUnauthorized {
					break
				}
				wantDetail(t, r, http.StatusUnauthorized, "Invalid username or password")
			}
			if fails < 3 {
				t.Fatalf("throttled after %d failures; want a few tries first", fails)
			}
			wantDetail(t, r, http.StatusTooManyRequests, "")
			ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 3600 {
				t.Fatalf("Retry-After = %q; want a number of seconds", r.Header.Get("Retry-After"))
			}
		})
	}
	r := s.callJSON(t, "POST", "/auth/login/", "", map[string]string{"username": victim.Name, "password": victim.Password})
	wantDetail(t, r, http.StatusTooManyRequests, "")
	if r.Header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After")
	}
	s.login(other) // fails the test unless 200
}

// TestUnauthenticated: a real server's tokens, tampered with or used in the
// wrong place, answer 401 with WWW-Authenticate: Bearer and a detail. (That
// every private route wants a token is http's TestContractEveryPrivateRouteNeedsAToken.)
func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser()

	parts := strings.Split(u.Access, ".")
	sig := []byte(parts[2])
	sig[len(sig)/2] ^= 1 // flip a bit of the signature
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	var claims map[string]any
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(b, &claims) != nil {
		t.Fatalf("access token payload %q is not JSON", parts[1])
	}
	claims["sub"] = fmt.Sprint(u.ID + 1000)
	forgedPayload, _ := json.Marshal(claims)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forgedPayload) + "." + parts[2]

	headers := []struct{ name, value string }{
		{"garbage", "Bearer garbage"},
		{"empty bearer", "Bearer "},
		{"three dots", "Bearer a.b.c"},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"token scheme", "Token " + u.Access},
		{"no scheme", u.Access},
		{"tampered signature", "Bearer " + tampered},
		{"forged subject", "Bearer " + forged},
		{"refresh token as access", "Bearer " + u.Refresh},
		{"unsigned", "Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."},
	}
	for _, h := range headers {
		t.Run(h.name, func(t *testing.T) {
			wantUnauthorized(t, s.call(t, "GET", "/list-chatrooms/", nil, "Authorization", h.value))
		})
	}
	t.Run("lower-case scheme", func(t *testing.T) {
		wantStatus(t, s.call(t, "GET", "/list-chatrooms/", nil, "Authorization", "bearer "+u.Access), http.StatusOK)
	})
}

// serverSkew is the clock skew the server tolerates on token expiry
// (http/auth.go): a token is refused only this long after its exp.
const serverSkew = 5 * time.Second

// TestExpiredAccessToken uses a server whose access tokens live 1 ms: once
// past expiry (and the tolerated skew), the token gets 401; the refresh
// token still gives a new pair.
func TestExpiredAccessToken(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *chatd.Config) { c.AccessTTL = time.Millisecond })
	u := s.newUser()

	parts := strings.Split(u.Access, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Exp int64 }
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == 0 {
		t.Fatalf("access token payload %s has no exp: %v", payload, err)
	}
	// No event announces expiry: wait for the clock.
	time.Sleep(time.Until(time.Unix(claims.Exp, 0).Add(serverSkew + time.Second)))

	wantUnauthorized(t, s.callJSON(t, "GET", "/list-chatrooms/", u.Access, nil))
	r := s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": u.Refresh})
	wantStatus(t, r, http.StatusOK)
}

func refreshPair(t testing.TB, s *testServer, refresh string) (access, next string) {
	t.Helper()
	r := s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": refresh})
	wantStatus(t, r, http.StatusOK)
	wantObject(t, r.Body, []string{"access", "refresh"})
	var p struct{ Access, Refresh string }
	r.JSON(t, &p)
	if p.Access == "" || p.Refresh == "" || p.Refresh == refresh {
		t.Fatalf("refresh = %s; want a new pair", r.Body)
	}
	return p.Access, p.Refresh
}

// TestRefreshRotation: a refresh gives a working pair and retires the old
// refresh token.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	t.Run("rotation", func(t *testing.T) {
		u := s.with(t).newUser()
		access1, refresh1 := refreshPair(t, s, u.Refresh)
		wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", access1, nil), http.StatusOK)
		access2, refresh2 := refreshPair(t, s, refresh1)
		wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", access2, nil), http.StatusOK)
		if refresh2 == refresh1 || access2 == access1 {
			t.Fatalf("second refresh returned the same tokens")
		}
		// The rotated-away tokens are dead...
		wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": u.Refresh}))
		wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": refresh1}))
		// ...and only they: the session's current pair goes on working.
		wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", access2, nil), http.StatusOK)
		refreshPair(t, s, refresh2)
	})

	t.Run("bad input", func(t *testing.T) {
		u := s.with(t).newUser()
		wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": "garbage"}))
		wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": u.Access}))
		wantFields(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{}),
			map[string][]string{"refresh": {"This field is required."}})
		// None of that hurt the real session.
		refreshPair(t, s, u.Refresh)
	})

	t.Run("concurrent reuse", func(t *testing.T) {
		// Two refreshes of one token at once: at most one wins.
		u := s.with(t).newUser()
		const n = 4
		codes := make(chan int, n)
		for range n {
			go func() {
				r, err := s.tryJSON("POST", "/auth/refresh/", "", map[string]string{"refresh": u.Refresh})
				if err != nil {
					t.Error(err)
				}
				codes <- r.Status
			}()
		}
		ok := 0
		for range n {
			switch c := <-codes; c {
			case http.StatusOK:
				ok++
			case http.StatusUnauthorized:
			default:
				t.Errorf("status = %d; want 200 or 401", c)
			}
		}
		if ok > 1 {
			t.Fatalf("%d concurrent refreshes of one token succeeded; want at most 1", ok)
		}
	})
}

// TestLogout: logout kills that session's access and refresh tokens at
// once, and only that session's.
func TestLogout(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	u := s.newUser()
	other := s.login(u) // a second session of the same user

	r := s.callJSON(t, "POST", "/auth/logout/", u.Access, nil)
	wantStatus(t, r, http.StatusOK)
	if got := r.text(); got != `{"message":"Logout successful"}` {
		t.Fatalf("logout = %s", got)
	}
	wantUnauthorized(t, s.callJSON(t, "GET", "/list-chatrooms/", u.Access, nil))
	wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": u.Refresh}))
	wantUnauthorized(t, s.callJSON(t, "POST", "/auth/logout/", u.Access, nil))

	wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", other.Access, nil), http.StatusOK)
	access, refresh := refreshPair(t, s, other.Refresh)
	wantStatus(t, s.callJSON(t, "POST", "/logout/", access, nil), http.StatusOK)
	wantUnauthorized(t, s.callJSON(t, "GET", "/list-chatrooms/", access, nil))
	wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": refresh}))
	wantUnauthorized(t, s.callJSON(t, "GET", "/list-chatrooms/", other.Access, nil))

	// Logging in again works.
	u = s.login(u)
	wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", u.Access, nil), http.StatusOK)
}

// A rotated-away refresh token that comes back later than the grace ends
// its session: whoever refreshed first (here a thief with a copy of the
// token) loses the tokens it got, and the session's sockets close. Within
// the grace (TestRefreshRotation) a reuse is a plain 401.
func TestRefreshReuseRevokesSession(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(cfg *chatd.Config) { cfg.RefreshReuseGrace = time.Microsecond })
	victim, peer := s.newUser(), s.newUser()
	room := s.room(victim, peer)
	other := s.login(victim) // another session of the victim: not touched
	ws := s.wsConnect(victim, room, "")

	thiefAccess, thiefRefresh := refreshPair(t, s, victim.Refresh) // the thief refreshes first
	wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", thiefAccess, nil), http.StatusOK)

	// The victim's client refreshes with the token it holds: refused, and
	// the session is over for everyone holding it.
	wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": victim.Refresh}))
	wantUnauthorized(t, s.callJSON(t, "GET", "/list-chatrooms/", thiefAccess, nil))
	wantUnauthorized(t, s.callJSON(t, "POST", "/auth/refresh/", "", map[string]string{"refresh": thiefRefresh}))
	wantUnauthorized(t, s.callJSON(t, "GET", "/list-chatrooms/", victim.Access, nil))
	ws.expectClose(t, websocket.ClosePolicyViolation)

	wantStatus(t, s.callJSON(t, "GET", "/list-chatrooms/", other.Access, nil), http.StatusOK)
	refreshPair(t, s, other.Refresh)
	s.login(victim) // and logging in again works
}
