package chatd_test

// Outages: while the database or the event store cannot be reached, the API
// answers 503 with Retry-After (never a 500), and it serves again once they
// are back.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evchat/evchat/eventstore/esdbtest"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/embeddedpg"
)

// outageLimit bounds every wait for the service to come back: passing it
// means recovery hung, not that it was slow.
const outageLimit = 60 * time.Second

// unavailableAnswer reports what is wrong with r as an answer during an
// outage: it must be one of ok, or 503 with Retry-After and the unavailable
// detail. "" means nothing is wrong.
func unavailableAnswer(r response, ok ...int) string {
	if slices.Contains(ok, r.Status) {
		return ""
	}
	if r.Status != http.StatusServiceUnavailable {
		return fmt.Sprintf("status %d (%s); want %v or 503", r.Status, r.text(), ok)
	}
	if r.Header.Get("Retry-After") == "" {
		return "503 without Retry-After"
	}
	var body map[string]any
	if json.Unmarshal(r.Body, &body) != nil || len(body) != 1 || body["detail"] != "Service temporarily unavailable." {
		return fmt.Sprintf("503 with body %s; want {\"detail\": \"Service temporarily unavailable.\"}", r.text())
	}
	return ""
}

// outageLoad keeps sending and listing in room until stopped, and checks
// every answer: a success, or a well-formed 503.
type outageLoad struct {
	s       *testServer
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	sent    []int64     // ids of sends answered 201
	answers map[int]int // count per status
	bad     []string
}

func startOutageLoad(s *testServer, u user, room int64, workers int) *outageLoad {
	l := &outageLoad{s: s, stop: make(chan struct{}), answers: map[int]int{}}
	for w := range workers {
		l.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				case <-time.After(5 * time.Millisecond): // pacing, so that 503s do not spin
				}
				var r response
				var err error
				switch n % 3 {
				case 0:
					r, err = s.tryJSON("POST", "/send-message/", u.Access, map[string]any{"conversation_id": room, "text": fmt.Sprintf("load %d-%d", w, n)})
				case 1:
					r, err = s.tryJSON("GET", "/list-messages/", u.Access, nil)
				default:
					r, err = s.tryJSON("GET", "/list-chatrooms/", u.Access, nil)
				}
				l.record(r, err, n%3 == 0)
			}
		})
	}
	return l
}

func (l *outageLoad) record(r response, err error, send bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.bad = append(l.bad, err.Error())
		return
	}
	l.answers[r.Status]++
	if bad := unavailableAnswer(r, http.StatusOK, http.StatusCreated); bad != "" {
		l.bad = append(l.bad, bad)
		return
	}
	if send && r.Status == http.StatusCreated {
		var m struct{ ID int64 }
		if json.Unmarshal(r.Body, &m) == nil {
			l.sent = append(l.sent, m.ID)
		}
	}
}

func (l *outageLoad) sentCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent)
}

// finish stops the load and fails t for every bad answer it saw.
func (l *outageLoad) finish(t *testing.T) []int64 {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load answers by status: %v", l.answers)
	for i, b := range l.bad {
		if i == 10 {
			t.Errorf("... and %d more", len(l.bad)-10)
			break
		}
		t.Errorf("answer during the outage: %s", b)
	}
	return l.sent
}

// firstWrite sends until a send answers 201 and returns how long that took
// after since; every answer before it must be a well-formed 503.
func (s *testServer) firstWrite(t *testing.T, u user, room int64, since time.Time) time.Duration {
	t.Helper()
	for n := 0; ; n++ {
		r := s.callJSON(t, "POST", "/send-message/", u.Access, map[string]any{"conversation_id": room, "text": fmt.Sprintf("back %d", n)})
		if r.Status == http.StatusCreated {
			return time.Since(since)
		}
		if bad := unavailableAnswer(r, http.StatusCreated); bad != "" {
			t.Fatalf("send after the outage: %s", bad)
		}
		if time.Since(since) > outageLimit {
			t.Fatalf("no send succeeded within %v of the outage's end", outageLimit)
		}
		time.Sleep(10 * time.Millisecond) // polling: nothing announces the recovery
	}
}

// listsAll fails t unless the room lists every id (answered 201 earlier).
func (s *testServer) listsAll(t *testing.T, u user, room int64, want []int64) {
	t.Helper()
	listed := map[int64]bool{}
	for _, id := range s.walk(t, u, fmt.Sprintf("/list-conversation-messages/%d/?after=0&limit=200", room), "next") {
		listed[id] = true
	}
	for _, id := range want {
		if !listed[id] {
			t.Errorf("message %d was answered 201 but is not listed", id)
		}
	}
}

// privatePG is a PostgreSQL server of one test's own, which the test may
// stop and start again on the same port (the shared pgtest server must
// never stop).
type privatePG struct {
	t    *testing.T
	dir  string
	port int
	srv  atomic.Pointer[embeddedpg.Server]
}

func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	pg := &privatePG{t: t, dir: filepath.Join(t.TempDir(), "postgres")}
	pg.start()
	t.Cleanup(func() { _ = pg.srv.Load().Stop(context.Background()) })
	return pg
}

// start starts the server, on the port of its first start.
func (pg *privatePG) start() {
	pg.t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := embeddedpg.Start(context.Background(), embeddedpg.Config{DataDir: pg.dir, Fast: true, Port: pg.port, Logger: quiet})
	if err != nil {
		pg.t.Fatalf("start PostgreSQL: %v", err)
	}
	pg.port = srv.Port()
	pg.srv.Store(srv)
}

// stop shuts the server down (pg_ctl stop -m fast: clients are disconnected).
func (pg *privatePG) stop() {
	pg.t.Helper()
	if err := pg.srv.Load().Stop(context.Background()); err != nil {
		pg.t.Fatalf("stop PostgreSQL: %v", err)
	}
}

// startOnPrivatePG starts chatd on a private PostgreSQL (and on the suite's
// event store). The projector's leader retry and the read-your-writes wait
// keep their production defaults unless opts change them: the recovery
// times the tests measure are theirs.
func startOnPrivatePG(t *testing.T, opts ...serverOption) (*testServer, *privatePG, chatd.Config) {
	t.Helper()
	pg := startPrivatePG(t)
	cfg := chatd.Config{Addr: "127.0.0.1:0", DatabaseURL: pg.srv.Load().URL("postgres"), DataDir: t.TempDir(), BcryptCost: 4}
	useEventStore(t, &cfg)
	for _, o := range opts {
		o(&cfg)
	}
	return startWith(t, cfg), pg, cfg
}

// TestDatabaseOutage stops the test's own PostgreSQL under load and starts
// it again on the same port. While it is down, every request that needs it
// answers 503 with Retry-After, and nothing answers 500; once it is back,
// writes succeed again, and every write answered 201 is kept.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	s, pg, cfg := startOnPrivatePG(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	first := s.send(a, room, "before the outage")
	var ws *wsConn
	if cfg.EventStoreURL == "" {
		ws = s.wsConnect(a, room, "")
	}

	load := startOutageLoad(s, a, room, 3)
	waitFor(t, outageLimit, "the load to send", func() bool { return load.sentCount() >= 3 })
	pg.stop()

	// Down: whatever needs the database is refused with 503.
	var during []int64
	for _, req := range []struct {
		method, path, token string
		body                any
		headers             []string
	}{
		{"POST", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "during the outage"}, nil},
		{"POST", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "keyed, during the outage"}, []string{"Idempotency-Key", "outage-1"}},
		{"GET", "/list-messages/", b.Access, nil, nil},
		{"GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil, nil},
		{"GET", "/list-chatrooms/", b.Access, nil, nil},
		{"POST", "/create-chatroom/", b.Access, nil, nil},
		{"POST", "/read-message/", b.Access, map[string]any{"conversation_id": room, "message_ids": []int64{first}}, nil},
		{"GET", fmt.Sprintf("/audit/conversations/%d/", room), b.Access, nil, nil},
		{"POST", "/auth/login/", "", map[string]string{"username": b.Name, "password": b.Password}, nil},
		{"POST", "/auth/refresh/", "", map[string]string{"refresh": b.Refresh}, nil},
		{"POST", "/auth/register/", "", map[string]string{"username": fmt.Sprintf("outage_%d", time.Now().UnixNano()), "password": "correct-horse-1"}, nil},
	} {
		r := s.callJSON(t, req.method, req.path, req.token, req.body, req.headers...)
		if r.Status == http.StatusCreated && req.path == "/send-message/" && len(req.headers) == 0 && cfg.EventStoreURL != "" {
			// The log is not in the database, and ids come in blocks: the
			// send is durable in the log and answers before the projection,
			// which catches up once the database is back.
			var m struct{ ID int64 }
			r.JSON(t, &m)
			during = append(during, m.ID)
			continue
		}
		if bad := unavailableAnswer(r); bad != "" {
			t.Errorf("%s %s while the database is down: %s", req.method, req.path, bad)
		}
	}
	if r := s.do("GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz while the database is down: %d %s; want 503", r.Status, r.Body)
	}
	if ws != nil {
		ws.write(t, map[string]any{"type": "message", "text": "over the socket, during the outage"})
		for {
			f := ws.next(t)
			if f.Type == "message" {
				continue // the load's, sent before the outage
			}
			if f.Type != "error" || f.Detail != "Service temporarily unavailable." {
				t.Fatalf("socket frame during the outage = %s; want an error frame saying the service is unavailable", f.Raw)
			}
			break
		}
	}

	pg.start()
	back := time.Now()
	took := s.firstWrite(t, a, room, back)
	t.Logf("first write succeeded %v after the database was back", took.Round(time.Millisecond))
	sent := load.finish(t)
	s.listsAll(t, a, room, append(append(sent, first), during...))
	if ws != nil {
		id := s.send(a, room, "the socket hears the room again")
		for f := ws.next(t); f.Type != "message" || f.ID != id; f = ws.next(t) {
		}
	}
}

// TestEventStoreOutage stops the EventStoreDB server under the API and
// resumes it: writes answer 503 with Retry-After meanwhile (reads of the
// read model go on), and succeed again once it is back.
func TestEventStoreOutage(t *testing.T) {
	t.Parallel()
	es := esdbtest.Start(t, esdbtest.Options{})
	s := startServer(t, func(c *chatd.Config) {
		// The client library's default search for a server after a
		// failure (up to 10 attempts of up to 5 s each) ignores a call's
		// context: the store lets the caller go at its call timeout.
		c.EventStoreURL, c.Hooks.EventStorePrefix = es.URL(), ""
		c.LeaderRetry = 0 // the production default: the recovery time measured is its
	})
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	first := s.send(a, room, "before the outage")

	load := startOutageLoad(s, a, room, 2)
	waitFor(t, outageLimit, "the load to send", func() bool { return load.sentCount() >= 3 })
	es.Stop()

	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/send-message/", map[string]any{"conversation_id": room, "text": "during the outage"}},
		{"POST", "/create-chatroom/", nil},
		{"POST", "/read-message/", map[string]any{"conversation_id": room, "message_ids": []int64{first}}},
	} {
		r := s.callJSON(t, req.method, req.path, b.Access, req.body)
		if bad := unavailableAnswer(r); bad != "" {
			t.Errorf("%s %s while the event store is down: %s", req.method, req.path, bad)
		}
	}
	if r := s.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil); r.Status != http.StatusOK {
		t.Errorf("list while the event store is down: %d %s; want 200 (the read model is up)", r.Status, r.Body)
	}

	if err := es.Resume(); err != nil {
		t.Fatalf("resume the event store: %v", err)
	}
	back := time.Now()
	took := s.firstWrite(t, a, room, back)
	t.Logf("first write succeeded %v after the event store was back", took.Round(time.Millisecond))
	sent := load.finish(t)
	s.listsAll(t, a, room, append(sent, first))
}

// TestWriteWhileTheDatabaseGoesDown: a send is appended, and the database
// goes down before the projector commits it. The send answered 201 once
// the message was in the log; the sender's next read waits for the
// projection, which cannot reach the database: the answer is 503 with
// Retry-After, not a list that contradicts the 201. The message stands and
// is listed once the database is back.
func TestWriteWhileTheDatabaseGoesDown(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s, pg, _ := startOnPrivatePG(t, func(c *chatd.Config) {
		c.ProjectionWait = time.Second
		c.LeaderRetry = 100 * time.Millisecond
		c.Hooks.ProjectorBeforeCommit = func(context.Context) error {
			if !armed.Load() {
				return nil
			}
			once.Do(func() { close(reached) })
			<-release
			return errors.New("the database went down under this batch")
		}
	})
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	armed.Store(true)
	r := s.callJSON(t, "POST", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "appended, not yet projected"})
	wantStatus(t, r, http.StatusCreated)
	select {
	case <-reached: // the message is in the log, and the projector is about to commit it
	case <-time.After(outageLimit):
		t.Fatal("the projector never reached the message's batch")
	}
	pg.stop()
	armed.Store(false)
	close(release)
	r = s.callJSON(t, "GET", fmt.Sprintf("/list-conversation-messages/%d/", room), a.Access, nil)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("the sender's read while the projection is stopped: %d %s; want 503", r.Status, r.text())
	}
	if bad := unavailableAnswer(r); bad != "" {
		t.Fatal(bad)
	}
	pg.start()
	waitFor(t, outageLimit, "the message to be listed", func() bool {
		r, err := s.tryJSON("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil)
		return err == nil && r.Status == http.StatusOK && strings.Contains(string(r.Body), "appended, not yet projected")
	})
}
