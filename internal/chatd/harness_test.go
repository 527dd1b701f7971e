package chatd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evchat/evchat/eventstore/esdbtest"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/internal/ratelimit"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testServer is a real chatd on a free port against its own database.
type testServer struct {
	*chatd.Main
	t    testing.TB
	base string
	stop func()
}

// serverOption adjusts a test server's configuration.
type serverOption func(*chatd.Config)

// startServer starts chatd on 127.0.0.1:0 with a fresh database and data
// folder. The server stops at the end of the test.
func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	return startWith(t, serverConfig(t, opts...))
}

// startLiveServer is startServer with delivery receipts and presence on
// (startWith turns them off: they add frames and change lists).
func startLiveServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	return startLive(t, serverConfig(t, opts...))
}

// serverConfig is the configuration of a test server on a fresh database.
func serverConfig(t testing.TB, opts ...serverOption) chatd.Config {
	t.Helper()
	cfg := chatd.Config{
		Addr:        "127.0.0.1:0",
		DatabaseURL: pgtest.NewDatabase(t),
		DataDir:     t.TempDir(),
		BcryptCost:  4, // the minimum: tests register many users
		LeaderRetry: 100 * time.Millisecond,
	}
	useEventStore(t, &cfg)
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// useEventStore puts the log in EventStoreDB when the suite runs on it:
// CHAT_TEST_EVENTSTORE=esdb runs every test against the in-process
// protocol test server; EVENTSTORE_TEST_URL against a real server, each
// test server isolated by a stream prefix.
func useEventStore(t testing.TB, cfg *chatd.Config) {
	t.Helper()
	if url := os.Getenv("EVENTSTORE_TEST_URL"); url != "" {
		cfg.EventStoreURL = url
		cfg.Hooks.EventStorePrefix = fmt.Sprintf("t%d-", time.Now().UnixNano())
		return
	}
	if os.Getenv("CHAT_TEST_EVENTSTORE") == "esdb" {
		cfg.EventStoreURL = esdbtest.Start(t, esdbtest.Options{}).URL()
	}
}

// startWith starts a server with exactly cfg (a second process on the same
// database, say).
func startWith(t testing.TB, cfg chatd.Config) *testServer {
	t.Helper()
	// Delivery receipts and presence add frames at moments of their own,
	// and lists record receipts: the suite's tests expect exact frame
	// sequences and stable lists. Their own tests use startLive.
	cfg.Hooks.QuietRooms = true
	return startLive(t, cfg)
}

// startLive starts a server with exactly cfg, delivery receipts and
// presence included.
func startLive(t testing.TB, cfg chatd.Config) *testServer {
	t.Helper()
	// The suite sends and registers far faster than a person: a rate
	// limit left unset is off, and the rate limits' own tests set them.
	for _, l := range []*ratelimit.Limit{&cfg.RegisterRate, &cfg.SendRate, &cfg.ReadRate} {
		if l.IsZero() {
			*l = ratelimit.Off
		}
	}
	level := slog.LevelWarn
	if os.Getenv("CHAT_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := chatd.New(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start chatd: %v", err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	var once atomic.Bool
	s := &testServer{Main: m, t: t, base: m.URL()}
	s.stop = func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		stopRun()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("chatd Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("chatd did not stop within 30s")
		}
		m.Close()
	}
	t.Cleanup(s.stop)
	return s
}

// response is an HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response body %q is not the expected JSON: %v", r.Body, err)
	}
}

// Map decodes a JSON object body.
func (r response) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// do is callJSON reporting to the test that started the server.
func (s *testServer) do(method, path, token string, body any, headers ...string) response {
	s.t.Helper()
	return s.callJSON(s.t, method, path, token, body, headers...)
}

// user is a registered, logged-in test user.
type user struct {
	ID       int64
	Name     string
	Password string
	Access   string
	Refresh  string
}

var userSeq atomic.Int64

// newUser registers and logs in a fresh user.
func (s *testServer) newUser() user {
	s.t.Helper()
	u := user{Name: fmt.Sprintf("user%d_%d", time.Now().UnixNano()%1e6, userSeq.Add(1)), Password: "correct-horse-1"}
	r := s.do("POST", "/auth/register/", "", map[string]string{"username": u.Name, "password": u.Password})
	if r.Status != http.StatusCreated {
		s.t.Fatalf("register %s: %d %s", u.Name, r.Status, r.Body)
	}
	// Registration's read-your-writes wait is bounded, and some tests
	// shorten it to a moment a busy machine may need more than: log in
	// only once the read model holds the user.
	s.caughtUp()
	return s.login(u)
}

// caughtUp waits until the read model has projected the whole log as it is now.
func (s *testServer) caughtUp() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	head, err := s.Store().Head(ctx)
	if err != nil {
		s.t.Fatalf("log head: %v", err)
	}
	if err := s.Watermark().Wait(ctx, head); err != nil {
		s.t.Fatalf("read model did not reach the log head %s: %v", head, err)
	}
}

func (s *testServer) login(u user) user {
	s.t.Helper()
	r := s.do("POST", "/auth/login/", "", map[string]string{"username": u.Name, "password": u.Password})
	if r.Status != http.StatusOK {
		s.t.Fatalf("login %s: %d %s", u.Name, r.Status, r.Body)
	}
	var body struct {
		Access, Refresh string
		User            struct{ ID int64 }
	}
	r.JSON(s.t, &body)
	u.ID, u.Access, u.Refresh = body.User.ID, body.Access, body.Refresh
	return u
}

// room creates a group of the given members, owned by owner, and returns its id.
func (s *testServer) room(owner user, members ...user) int64 {
	s.t.Helper()
	ids := make([]int64, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	r := s.do("POST", "/create-chatroom/", owner.Access, map[string]any{"type": "group", "name": "room", "members": ids})
	if r.Status != http.StatusCreated {
		s.t.Fatalf("create room: %d %s", r.Status, r.Body)
	}
	var c struct{ ID int64 }
	r.JSON(s.t, &c)
	return c.ID
}

// send posts a text message and returns its id.
func (s *testServer) send(u user, room int64, text string) int64 {
	s.t.Helper()
	r := s.do("POST", "/send-message/", u.Access, map[string]any{"conversation_id": room, "text": text})
	if r.Status != http.StatusCreated {
		s.t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	var m struct{ ID int64 }
	r.JSON(s.t, &m)
	return m.ID
}

// TestSmoke checks the harness itself: a server starts and answers.
func TestSmoke(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	if r := s.do("GET", "/healthz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("healthz = %d; want 200", r.Status)
	}
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	id := s.send(a, room, "hi")
	r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil)
	var msgs []struct{ ID int64 }
	r.JSON(t, &msgs)
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("messages = %s; want the one sent", r.Body)
	}
}
