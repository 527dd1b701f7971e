package http

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
)

type fakeForgetter struct{ calls []int64 }

func (f *fakeForgetter) ForgetUser(_ context.Context, user int64) (Forgotten, error) {
	f.calls = append(f.calls, user)
	if user == 404 {
		return Forgotten{}, commands.ErrUserNotFound
	}
	return Forgotten{User: user, Position: "1-1"}, nil
}

// The admin route exists only with an admin token: 404 without one; with
// one, no token is 401 (WWW-Authenticate: Bearer), a wrong one 403, and
// only the right one reaches the forgetter.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	for _, token := range []string{"", "s3cret"} {
		f := &fakeForgetter{}
		s := New(Config{
			Commands: commands.New(commands.Config{Registry: domain.NewRegistry(), Limits: domain.DefaultLimits()}),
			Tokens:   fakeTokens{}, Throttle: fakeThrottle{}, Passwords: fakePasswords{},
			Logger: slog.New(slog.DiscardHandler), JSONBodyLimit: 1 << 10, Unreachable: func(error) bool { return false },
			AdminToken: token, Forgetter: f,
		})
		ts := httptest.NewServer(s)
		t.Cleanup(ts.Close)
		type call struct {
			path, auth string
			want       int
		}
		calls := []call{{"/admin/users/7/", "Bearer s3cret", http.StatusNotFound}, {"/admin/users/7/", "", http.StatusNotFound}}
		if token != "" {
			calls = []call{
				{"/admin/users/7/", "", http.StatusUnauthorized},
				{"/admin/users/7/", "Basic czNjcmV0", http.StatusUnauthorized},
				{"/admin/users/7/", "Bearer s3cre", http.StatusForbidden},
				{"/admin/users/7/", "Bearer s3cret2", http.StatusForbidden},
				{"/admin/users/x/", "Bearer s3cret", http.StatusNotFound},
				{"/admin/users/404/", "Bearer s3cret", http.StatusNotFound},
				{"/admin/users/7/", "Bearer s3cret", http.StatusOK},
			}
		}
		for _, c := range calls {
			a := request(t, ts, "DELETE", c.path, "", "Authorization", c.auth)
			if a.status != c.want {
				t.Errorf("token %q: DELETE %s with %q = %d %s; want %d", token, c.path, c.auth, a.status, a.body, c.want)
			}
			if c.want == http.StatusUnauthorized && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		}
		want := 0
		if token != "" {
			want = 2 // 404 and 7
		}
		if len(f.calls) != want {
			t.Errorf("token %q: the forgetter was called for %v; want %d calls", token, f.calls, want)
		}
	}
}
