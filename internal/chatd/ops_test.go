package chatd_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/esdbtest"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/projections"
)

// snapshot is every list endpoint's answer for the given users and rooms.
func (s *testServer) snapshot(users []user, rooms []int64) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	for _, u := range users {
		for _, path := range []string{"/list-chatrooms/", "/list-messages/?limit=200"} {
			r := s.do("GET", path, u.Access, nil)
			if r.Status != http.StatusOK {
				s.t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
			out[fmt.Sprintf("%d %s", u.ID, path)] = string(r.Body)
		}
		for _, room := range rooms {
			path := fmt.Sprintf("/list-conversation-messages/%d/?limit=200", room)
			r := s.do("GET", path, u.Access, nil)
			out[fmt.Sprintf("%d %s", u.ID, path)] = fmt.Sprint(r.Status, string(r.Body))
		}
	}
	return out
}

func sameSnapshots(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g := got[k]; g != w {
			t.Errorf("%s after rebuild:\n got  %s\n want %s", k, g, w)
		}
	}
}

// traffic makes users, rooms, messages, reads, a leave: every event kind.
func (s *testServer) traffic(n int) ([]user, []int64) {
	s.t.Helper()
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	r1, r2 := s.room(a, b, c), s.room(b, a)
	var ids []int64
	for i := range n {
		ids = append(ids, s.send([]user{a, b, c}[i%3], r1, fmt.Sprintf("message %d", i)))
		if i%4 == 0 {
			s.send(b, r2, fmt.Sprintf("side %d", i))
		}
	}
	if r := s.do("POST", "/read-message/", b.Access, map[string]any{"conversation_id": r1, "message_ids": ids[:n/2]}); r.Status != http.StatusOK {
		s.t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	if r := s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", r2), a.Access, nil); r.Status != http.StatusOK {
		s.t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	return []user{a, b, c}, []int64{r1, r2}
}

func TestRebuildWhileServingMatchesIncremental(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	users, rooms := s.traffic(30)
	ctx := context.Background()

	// Writes keep coming during the rebuild.
	stop := make(chan struct{})
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	wg.Add(1)
	sent := 0
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.send(users[i%3], rooms[0], fmt.Sprintf("during rebuild %d", i))
			sent++
		}
	}()
	// So do reads that join several read-model tables: the swap must not
	// fail them (a deadlock between the swap's locks and theirs once did).
	var failed []string
	for _, path := range []string{
		"/list-chatrooms/",
		fmt.Sprintf("/list-conversation-messages/%d/", rooms[0]),
		"/list-messages/",
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := s.do("GET", path, users[1].Access, nil); r.Status != http.StatusOK {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("GET %s: %d %s", path, r.Status, r.Body))
					mu.Unlock()
				}
			}
		}()
	}
	chat := projections.NewChat(domain.NewRegistry())
	n, err := projections.Rebuild(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{BatchSize: 17})
	close(stop)
	wg.Wait()
	for _, f := range failed {
		t.Errorf("read during the rebuild failed: %s", f)
	}
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if n == 0 || sent == 0 {
		t.Fatalf("rebuilt %d events with %d sends during it; want both > 0", n, sent)
	}
	s.send(users[0], rooms[0], "after the swap")
	s.caughtUp()
	diffs, _, err := projections.Verify(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, d := range diffs {
		if !d.Equal {
			t.Errorf("table %s differs from a fresh rebuild: live %d rows, rebuilt %d; only live %v; only rebuilt %v",
				d.Table, d.LiveRows, d.RebuiltRows, d.OnlyLive, d.OnlyRebuilt)
		}
	}
	// Every message is listed once, ids ascending.
	var msgs []struct{ ID int64 }
	s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?limit=200", rooms[0]), users[0].Access, nil).JSON(t, &msgs)
	if want := 30 + sent + 1; len(msgs) != want {
		t.Errorf("room lists %d messages; want %d", len(msgs), want)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].ID <= msgs[i-1].ID {
			t.Fatalf("ids not ascending at %d: %d then %d", i, msgs[i-1].ID, msgs[i].ID)
		}
	}
}

func TestInterruptedRebuildLeavesLiveModelUntouched(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	users, rooms := s.traffic(20)
	s.caughtUp()
	before := s.snapshot(users, rooms)

	ctx, cancel := context.WithCancel(context.Background())
	chat := projections.NewChat(domain.NewRegistry())
	_, err := projections.Rebuild(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{
		BatchSize: 5,
		Progress:  func(done int64) { cancel() }, // interrupted after its first batch
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Rebuild = %v; want context.Canceled", err)
	}
	sameSnapshots(t, s.snapshot(users, rooms), before)

	// Running it again starts over and completes.
	if _, err := projections.Rebuild(context.Background(), s.Pool(), s.Store(), chat, projections.RebuildOptions{BatchSize: 5}); err != nil {
		t.Fatalf("second Rebuild: %v", err)
	}
	sameSnapshots(t, s.snapshot(users, rooms), before)
}

// TestRebuildIntoEmptyDatabase keeps the log in an event store outside the
// database (EventStoreDB, here its protocol test server), drops the database,
// and starts a server on an empty one: it rebuilds every list endpoint's
// answers from the log, and new ids continue past the old ones.
func TestRebuildIntoEmptyDatabase(t *testing.T) {
	t.Parallel()
	es := esdbtest.Start(t, esdbtest.Options{})
	key := t.TempDir() + "/jwt.pem"
	cfg := chatd.Config{
		Addr: "127.0.0.1:0", DatabaseURL: pgtest.NewDatabase(t), DataDir: t.TempDir(),
		EventStoreURL: es.URL(), JWTKeyFile: key, BcryptCost: 4, LeaderRetry: 100 * time.Millisecond,
	}
	a := startWith(t, cfg)
	users, rooms := a.traffic(25)
	a.caughtUp()
	before := a.snapshot(users, rooms)
	var newest []struct{ ID int64 }
	a.do("GET", "/list-messages/?limit=1", users[1].Access, nil).JSON(t, &newest)
	if len(newest) != 1 || newest[0].ID < 25 {
		t.Fatalf("newest message = %+v; want one with id >= 25", newest)
	}
	last := newest[0]
	creds := credentialRows(t, a)
	keys := userKeyRows(t, a)
	a.stop()

	cfg.DatabaseURL = pgtest.NewDatabase(t) // empty: no read model, no sessions, fresh sequences
	// The keys that open the log's personal data are write-side state as
	// well: restored from the backup before the log is projected.
	restoreUserKeys(t, cfg, keys)
	b := startWith(t, cfg)
	// Password hashes are write-side state, never in the log: they come
	// back from the database's backup, as sessions would.
	restoreCredentials(t, b, creds)
	b.caughtUp()
	for i := range users {
		users[i] = b.login(users[i]) // sessions lived in the old database
	}
	sameSnapshots(t, b.snapshot(users, rooms), before)
	if id := b.send(users[0], rooms[0], "new"); id <= last.ID {
		t.Errorf("new message id %d; want past the replayed %d", id, last.ID)
	}
	r := b.do("POST", "/create-chatroom/", users[0].Access, nil)
	var room struct{ ID int64 }
	r.JSON(t, &room)
	if room.ID <= rooms[1] {
		t.Errorf("new room id %d; want past the replayed %d", room.ID, rooms[1])
	}
	u := b.newUser()
	if u.ID <= users[2].ID {
		t.Errorf("new user id %d; want past the replayed %d", u.ID, users[2].ID)
	}
}

func TestAuditEndpointListsHistoryInOrder(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	users, rooms := s.traffic(5)
	var events []struct {
		Type     string
		Revision uint64
		Position string
		Metadata struct {
			ActorID int64 `json:"actor_id"`
		}
	}
	r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/", rooms[1]), users[1].Access, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("audit: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &events)
	var types []string
	var prev eventstore.Position
	for i, e := range events {
		types = append(types, e.Type)
		p, err := eventstore.ParsePosition(e.Position)
		if err != nil || !prev.Less(p) || e.Revision != uint64(i) {
			t.Errorf("event %d: position %s after %s, revision %d: not in log order", i, e.Position, prev, e.Revision)
		}
		prev = p
	}
	want := []string{domain.TypeConversationCreated, domain.TypeMessageSent, domain.TypeMessageSent, domain.TypeMemberLeft}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("audit types = %v; want %v", types, want)
	}
	if events[len(events)-1].Metadata.ActorID != users[0].ID {
		t.Errorf("leave actor = %d; want %d", events[len(events)-1].Metadata.ActorID, users[0].ID)
	}
	if r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/", rooms[1]), users[2].Access, nil); r.Status != http.StatusForbidden {
		t.Errorf("audit by a non-member = %d; want 403", r.Status)
	}
}

// A server that cannot start says why, and leaves nothing running.
func TestStartFailureIsAnError(t *testing.T) {
	t.Parallel()
	_, err := chatd.New(context.Background(), chatd.Config{
		Addr: "127.0.0.1:0", DatabaseURL: "postgres://nobody:x@127.0.0.1:1/none?connect_timeout=2", DataDir: t.TempDir(),
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "connect to the database") {
		t.Fatalf("New with an unreachable database = %v; want a connection error", err)
	}
}
