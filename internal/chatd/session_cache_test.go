package chatd_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
)

// Process B has believed a session recently (it caches live sessions); a
// logout on process A must end it on B too, well before the cache's bound.
func TestLogoutEndsSessionOnOtherProcesses(t *testing.T) {
	t.Parallel()
	cfg := chatd.Config{
		Addr: "127.0.0.1:0", DatabaseURL: pgtest.NewDatabase(t), DataDir: t.TempDir(),
		JWTKeyFile: t.TempDir() + "/jwt.pem", BcryptCost: 4, LeaderRetry: 100 * time.Millisecond,
	}
	useEventStore(t, &cfg)
	a := startWith(t, cfg)
	cfg.DataDir = t.TempDir()
	b := startWith(t, cfg)
	u := a.newUser()
	if r := b.do("GET", "/list-chatrooms/", u.Access, nil); r.Status != http.StatusOK {
		t.Fatalf("B before logout = %d; want 200", r.Status)
	}
	if r := a.do("POST", "/auth/logout/", u.Access, nil); r.Status != http.StatusOK {
		t.Fatalf("logout on A = %d", r.Status)
	}
	deadline := time.Now().Add(time.Second) // the notice crosses processes asynchronously
	for {
		r := b.do("GET", "/list-chatrooms/", u.Access, nil)
		if r.Status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still accepts the logged-out token after 1s: %d", r.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := a.do("GET", "/list-chatrooms/", u.Access, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("A after logout = %d; want 401 at once", r.Status)
	}
}
