package http

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
)

// The contract that needs no database: authentication, aliases, error
// shapes, body and parameter validation, headers. These requests are all
// answered before a command runs or the read model is asked, so the server
// here has neither (a handler that reached them would panic, and the test
// would fail with a 500).

// goodToken is the one access token fakeTokens accepts, for user 1.
const goodToken = "good-token"

type fakeTokens struct{}

func (fakeTokens) Login(context.Context, int64) (auth.Pair, error) { return auth.Pair{}, nil }
func (fakeTokens) Refresh(context.Context, string) (auth.Pair, error) {
	return auth.Pair{}, auth.ErrInvalidToken
}
func (fakeTokens) Authenticate(_ context.Context, raw string) (auth.Claims, error) {
	if raw != goodToken {
		return auth.Claims{}, auth.ErrInvalidToken
	}
	return auth.Claims{UserID: 1, SessionID: uuid.New(), Expires: time.Now().Add(time.Hour)}, nil
}
func (fakeTokens) Revoke(context.Context, uuid.UUID) error { return nil }
func (fakeTokens) AccessTTL() time.Duration                { return 15 * time.Minute }

type fakeThrottle struct{ retryAfter time.Duration }

func (f fakeThrottle) Begin(context.Context, string, string) error {
	if f.retryAfter > 0 {
		return &auth.Throttled{RetryAfter: f.retryAfter}
	}
	return nil
}
func (fakeThrottle) Succeeded(context.Context, string, string) {}

type fakePasswords struct{}

func (fakePasswords) Hash(p string) (string, error) { return "hash:" + p, nil }
func (fakePasswords) Compare([]byte, string) error  { return errBadCredentials }

func contractServer(t *testing.T, throttle fakeThrottle) *httptest.Server {
	t.Helper()
	s := New(Config{
		Commands: commands.New(commands.Config{Registry: domain.NewRegistry(), Limits: domain.DefaultLimits()}),
		Tokens:   fakeTokens{}, Throttle: throttle, Passwords: fakePasswords{},
		Logger:        slog.New(slog.DiscardHandler),
		JSONBodyLimit: 1 << 10,
		Unreachable:   func(error) bool { return false },
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

type answer struct {
	status int
	header http.Header
	body   string
}

func request(t *testing.T, ts *httptest.Server, method, path, body string, headers ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, strings.TrimSpace(string(b))}
}

func (a answer) want(t *testing.T, status int, body string) {
	t.Helper()
	if a.status != status || (body != "" && a.body != body) {
		t.Fatalf("answer = %d %s; want %d %s", a.status, a.body, status, body)
	}
}

// wantDetail checks the {"detail": "..."} shape of every non-field error.
func (a answer) wantDetail(t *testing.T, status int) {
	t.Helper()
	var v map[string]any
	if a.status != status || json.Unmarshal([]byte(a.body), &v) != nil || len(v) != 1 || v["detail"] == nil {
		t.Fatalf("answer = %d %s; want %d {\"detail\": ...}", a.status, a.body, status)
	}
}

// Every route but the public ones wants a valid bearer token: 401 with
// WWW-Authenticate: Bearer and a detail, whatever the body.
func TestContractEveryPrivateRouteNeedsAToken(t *testing.T) {
	t.Parallel()
	ts := contractServer(t, fakeThrottle{})
	public := func(path string) bool {
		return slices.Contains([]string{"/auth/register/", "/register/", "/auth/login/", "/login/", "/auth/refresh/", "/healthz/", "/readyz/", "/metrics/", "/"}, path) ||
			strings.HasPrefix(path, "/openapi") || strings.HasPrefix(path, "/docs") || strings.HasPrefix(path, "/app/") ||
			strings.HasPrefix(path, "/admin/") // the operators' token, not a user's: TestAdminToken
	}
	s := ts.Config.Handler.(*Server)
	checked := 0
	for _, r := range s.echo.Routes() {
		if public(r.Path) || r.Method == http.MethodHead {
			continue
		}
		path := strings.NewReplacer(":id", "1", ":key", strings.Repeat("ab", 32)).Replace(r.Path)
		for _, token := range []string{"", "Bearer forged", "Basic dXNlcjpwYXNz"} {
			a := request(t, ts, r.Method, path, `{}`, "Authorization", token)
			if a.status != http.StatusUnauthorized {
				t.Fatalf("%s %s with %q = %d %s; want 401", r.Method, path, token, a.status, a.body)
			}
			a.wantDetail(t, http.StatusUnauthorized)
			if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s %s with %q: WWW-Authenticate = %q; want Bearer", r.Method, path, token, a.header.Get("WWW-Authenticate"))
			}
		}
		checked++
	}
	if checked < 12 {
		t.Fatalf("checked %d private routes; the server has more", checked)
	}
}

// The original's paths answer exactly as the documented ones.
func TestContractAliases(t *testing.T) {
	t.Parallel()
	ts := contractServer(t, fakeThrottle{})
	for _, c := range []struct{ alias, path, body, token string }{
		{"/register/", "/auth/register/", `{"username": "x"}`, ""},
		{"/register/", "/auth/register/", `not json`, ""},
		{"/login/", "/auth/login/", `{"password": "x"}`, ""},
		{"/logout/", "/auth/logout/", ``, ""},
	} {
		a, b := request(t, ts, "POST", c.alias, c.body), request(t, ts, "POST", c.path, c.body)
		if a.status != b.status || a.body != b.body {
			t.Fatalf("POST %s = %d %s; POST %s = %d %s; want the same", c.alias, a.status, a.body, c.path, b.status, b.body)
		}
	}
	// A path without its trailing slash is served the same, not redirected.
	request(t, ts, "POST", "/auth/register", `{}`).want(t, http.StatusBadRequest,
		`{"password":["This field is required."],"username":["This field is required."]}`)
}

func TestContractBodies(t *testing.T) {
	t.Parallel()
	ts := contractServer(t, fakeThrottle{})
	request(t, ts, "POST", "/auth/register/", `{"username": 5, "password": "x"}`).want(t, http.StatusBadRequest,
		`{"username":["Not a valid string."]}`)
	request(t, ts, "POST", "/auth/register/", `[1, 2]`).wantDetail(t, http.StatusBadRequest)
	request(t, ts, "POST", "/auth/register/", `{"username": "a"`).wantDetail(t, http.StatusBadRequest)
	request(t, ts, "POST", "/auth/register/", `{"username":"a","password":"b"}`, "Content-Type", "text/plain").wantDetail(t, http.StatusUnsupportedMediaType)
	request(t, ts, "POST", "/auth/register/", `{"username":"a","password":"b"}`, "Content-Type", "application/jsonx").wantDetail(t, http.StatusUnsupportedMediaType)
	big := `{"username": "` + strings.Repeat("a", 2<<10) + `", "password": "x"}`
	request(t, ts, "POST", "/auth/register/", big).wantDetail(t, http.StatusRequestEntityTooLarge)
	request(t, ts, "POST", "/auth/login/", `{"username": "`+strings.Repeat("a", 151)+`", "password": "x"}`).want(t, http.StatusBadRequest,
		`{"username":["Ensure this field has no more than 150 characters."]}`)
	request(t, ts, "POST", "/auth/refresh/", `{}`).want(t, http.StatusBadRequest, `{"refresh":["This field is required."]}`)
}

// A throttled login is a 429 with Retry-After in whole seconds, rounded up.
func TestContractThrottledLogin(t *testing.T) {
	t.Parallel()
	ts := contractServer(t, fakeThrottle{retryAfter: 1500 * time.Millisecond})
	a := request(t, ts, "POST", "/auth/login/", `{"username": "alice", "password": "secret-123"}`)
	a.wantDetail(t, http.StatusTooManyRequests)
	if got := a.header.Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After = %q; want 2", got)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("login answer Cache-Control = %q; want no-store", a.header.Get("Cache-Control"))
	}
}

// Paging parameters are checked before anything is read.
func TestContractPagingParameters(t *testing.T) {
	t.Parallel()
	ts := contractServer(t, fakeThrottle{})
	auth := []string{"Authorization", "Bearer " + goodToken}
	for _, c := range []struct{ query, field string }{
		{"limit=abc", "limit"}, {"limit=-1", "limit"}, {"before=x", "before"}, {"before=0", "before"},
		{"after=-5", "after"}, {"after=99999999999999999999", "after"},
	} {
		for _, path := range []string{"/list-messages/", "/list-conversation-messages/1/"} {
			a := request(t, ts, "GET", path+"?"+c.query, "", auth...)
			a.want(t, http.StatusBadRequest, `{"`+c.field+`":["A valid positive integer is required."]}`)
		}
	}
	request(t, ts, "GET", "/list-messages/?before=5&after=3", "", auth...).wantDetail(t, http.StatusBadRequest)
	request(t, ts, "GET", "/list-conversation-messages/abc/", "", auth...).wantDetail(t, http.StatusNotFound)
}

func TestContractUnknownPathsAndMethods(t *testing.T) {
	t.Parallel()
	ts := contractServer(t, fakeThrottle{})
	request(t, ts, "GET", "/no-such-thing/", "").wantDetail(t, http.StatusNotFound)
	a := request(t, ts, "GET", "/create-chatroom/", "", "Authorization", "Bearer "+goodToken)
	a.wantDetail(t, http.StatusMethodNotAllowed)
}

func TestContractHeaders(t *testing.T) {
	t.Parallel()
	ts := contractServer(t, fakeThrottle{})
	for _, path := range []string{"/healthz/", "/no-such-thing/", "/list-chatrooms/", "/"} {
		if a := request(t, ts, "GET", path, ""); a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: X-Content-Type-Options = %q; want nosniff", path, a.header.Get("X-Content-Type-Options"))
		}
	}
	// A well-formed request id is kept; anything else is replaced by a
	// generated one.
	if a := request(t, ts, "GET", "/healthz/", "", "X-Request-Id", "abc-123_x.y"); a.header.Get("X-Request-Id") != "abc-123_x.y" {
		t.Fatalf("X-Request-Id = %q; want the client's", a.header.Get("X-Request-Id"))
	}
	for _, id := range []string{strings.Repeat("a", 65), "a b", "x\"level=ERROR"} {
		got := request(t, ts, "GET", "/healthz/", "", "X-Request-Id", id).header.Get("X-Request-Id")
		if got == id || got == "" || !wellFormedRequestID(got) {
			t.Fatalf("X-Request-Id %q answered as %q; want a generated one", id, got)
		}
	}
}
