package chatd_test

// The projector under failure: batches that fail before commit, a process
// killed in the middle of a batch, and a second process taking over.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/internal/chatd"
)

// readModelCounts are the row counts of the read-model tables a message
// touches, and the message ids in the read model.
type readModelCounts struct {
	Messages, Counted, Unread, ReadBy int64
	IDs                               []int64
}

// countReadModel reads the read model of room straight from the database.
func countReadModel(t testing.TB, databaseURL string, room int64) readModelCounts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var c readModelCounts
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM readmodel.messages WHERE conversation_id = $1),
		(SELECT message_count FROM readmodel.conversations WHERE id = $1),
		(SELECT coalesce(sum(c.message_count - me.not_received - pm.read_count), 0)
		   FROM readmodel.members me JOIN readmodel.conversations c ON c.id = me.conversation_id
		   JOIN readmodel.past_members pm ON pm.user_id = me.user_id AND pm.conversation_id = me.conversation_id
		  WHERE me.conversation_id = $1),
		(SELECT coalesce(sum(cardinality(read_by)), 0) FROM readmodel.messages WHERE conversation_id = $1),
		(SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM readmodel.messages WHERE conversation_id = $1)`, room).
		Scan(&c.Messages, &c.Counted, &c.Unread, &c.ReadBy, &c.IDs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantProjected checks the read model of room holds exactly the messages
// sent (each once, counted once in the room's message_count and the
// members' unread counts, every member receiving all but their own) and
// that the listing
// agrees.
func wantProjected(t testing.TB, s *testServer, databaseURL string, reader user, room int64, sent []int64, members, reads int64) {
	t.Helper()
	slices.Sort(sent)
	listed := ids(firstOf(s.conversationMessages(t, reader, room, "?limit=200")))
	if !slices.Equal(listed, sent) {
		t.Fatalf("listed ids = %v; want %v", listed, sent)
	}
	c := countReadModel(t, databaseURL, room)
	n := int64(len(sent))
	want := readModelCounts{Messages: n, Counted: n, Unread: n*(members-1) - reads, ReadBy: reads, IDs: sent}
	if c.Messages != want.Messages || c.Counted != want.Counted || c.Unread != want.Unread || c.ReadBy != want.ReadBy || !slices.Equal(c.IDs, want.IDs) {
		t.Fatalf("read model = %+v; want %+v", c, want)
	}
}

// TestProjectorFailingBatches makes projector batches fail after their
// statements ran but before commit, several times in a row while messages
// and receipts arrive; the projector retries and the read model ends up with
// every row exactly once.
func TestProjectorFailingBatches(t *testing.T) {
	t.Parallel()
	var failures, calls atomic.Int32
	hook := func(context.Context) error {
		calls.Add(1)
		if failures.Add(-1) >= 0 {
			return errors.New("injected failure before commit")
		}
		return nil
	}
	var cfg chatd.Config
	s := startServer(t, func(c *chatd.Config) { c.Hooks.ProjectorBeforeCommit = hook }, capture(&cfg))
	failures.Store(-1 << 20) // off during set-up
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b, c)
	var sent []int64
	for i := range 5 {
		sent = append(sent, s.send(a, room, fmt.Sprintf("before %d", i)))
	}

	read := slices.Clone(sent)
	before := calls.Load()
	failures.Store(3)
	// Run them at once, so that they meet the failing batches.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 10 {
		u := []user{b, c}[i%2]
		wg.Go(func() {
			id, err := s.trySend(u, room, fmt.Sprintf("during %d", i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sent = append(sent, id)
			mu.Unlock()
		})
	}
	wg.Go(func() {
		r, err := s.tryJSON("POST", "/read-message/", b.Access, map[string]any{"conversation_id": room, "message_ids": read})
		if err != nil || r.Status != 200 {
			t.Errorf("read: %v %d %s", err, r.Status, r.Body)
		}
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// One more write proves the projector is past the failures.
	sent = append(sent, s.send(a, room, "after"))
	s.caughtUp() // sends answer before the projection
	if failures.Load() >= 0 || calls.Load()-before < 4 {
		t.Fatalf("hook ran %d times with %d failures left; want the 3 failures used", calls.Load()-before, failures.Load())
	}
	wantProjected(t, s, cfg.DatabaseURL, a, room, sent, 3, 5)
}

// TestProjectorKilledMidBatch stops a server while its projector holds an
// uncommitted batch open; the batch dies with the process, and a new process
// on the same database projects it exactly once.
func TestProjectorKilledMidBatch(t *testing.T) {
	t.Parallel()
	var block atomic.Bool
	entered := make(chan struct{})
	var once sync.Once
	hook := func(ctx context.Context) error {
		if !block.Load() {
			return nil
		}
		once.Do(func() { close(entered) })
		<-ctx.Done() // hold the transaction open until the process stops
		return ctx.Err()
	}
	var cfg chatd.Config
	s := startServer(t, func(c *chatd.Config) { c.Hooks.ProjectorBeforeCommit = hook }, capture(&cfg))
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	var sent []int64
	for i := range 5 {
		sent = append(sent, s.send(a, room, fmt.Sprintf("before %d", i)))
	}

	s.caughtUp() // sends answer before the projection: the 5 are projected before the hold

	block.Store(true)
	// The send answers once its event is in the log, without waiting for
	// the read model; the projector then holds the batch with it open. Stop
	// the process while it does (an open transaction holds back every log
	// reader of the cluster, so keep this short); the log tells which
	// message it was.
	inFlight := s.send(b, room, "in flight")
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the projector never reached the held batch")
	}
	s.stop()
	if got := countReadModel(t, cfg.DatabaseURL, room); got.Messages != 5 || got.Counted != 5 {
		t.Fatalf("after the kill the read model has %+v; want the 5 messages committed before it", got)
	}

	cfg.Hooks.ProjectorBeforeCommit = nil
	s2 := startWith(t, cfg)
	a = s2.login(a)
	r := s2.callJSON(t, "GET", fmt.Sprintf("/audit/conversations/%d/", room), a.Access, nil)
	wantStatus(t, r, http.StatusOK)
	var events []struct {
		Type string
		Data struct {
			MessageID int64  `json:"message_id"`
			Text      string `json:"text"`
		}
	}
	r.JSON(t, &events)
	for _, e := range events {
		if e.Type == "chat.message_sent" && e.Data.Text == "in flight" {
			sent = append(sent, e.Data.MessageID)
		}
	}
	if len(sent) != 6 || sent[5] != inFlight {
		t.Fatalf("the log has messages %v; want 6, the last %d", sent, inFlight)
	}
	sent = append(sent, s2.send(a, room, "after the restart"))
	wantProjected(t, s2, cfg.DatabaseURL, a, room, sent, 2, 0)
}

// TestSecondProcessTakesOver runs two servers on one database: one projects
// (it holds the projector lease), both serve, and when the projecting one
// stops the other takes over.
func TestSecondProcessTakesOver(t *testing.T) {
	t.Parallel()
	var cfg chatd.Config
	first := startServer(t, capture(&cfg))
	a, b := first.newUser(), first.newUser()
	room := first.room(a, b)
	var sent []int64
	for i := range 3 {
		sent = append(sent, first.send(a, room, fmt.Sprintf("first %d", i)))
	}

	cfg2 := cfg
	cfg2.DataDir = t.TempDir()
	cfg2.JWTKeyFile = filepath.Join(cfg.DataDir, "jwt-ed25519.pem") // tokens valid on both
	second := startWith(t, cfg2)

	// Both serve while the first projects; tokens work on either.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 10 {
		srv := []*testServer{first, second}[i%2]
		u := []user{a, b}[i%3%2]
		wg.Go(func() {
			id, err := srv.trySend(u, room, fmt.Sprintf("both %d", i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sent = append(sent, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Read-your-writes holds on the process that did not project.
	id := second.send(b, room, "via second")
	sent = append(sent, id)
	if got := firstOf(second.conversationMessages(t, b, room, "")); got[len(got)-1].ID != id {
		t.Fatalf("second's list does not end with %d just sent there", id)
	}

	first.stop()
	for i := range 3 {
		id := second.send(a, room, fmt.Sprintf("after the first stopped %d", i))
		sent = append(sent, id)
		if got := firstOf(second.conversationMessages(t, a, room, "")); got[len(got)-1].ID != id {
			t.Fatalf("after takeover the list does not end with %d just sent", id)
		}
	}
	wantStatus(t, second.callJSON(t, "POST", "/read-message/", b.Access, map[string]any{"conversation_id": room, "message_ids": sent}), 200)
	var fromA int64
	for _, m := range firstOf(second.conversationMessages(t, a, room, "?limit=200")) {
		if m.Sender == a.ID {
			fromA++
		}
	}
	wantProjected(t, second, cfg.DatabaseURL, a, room, sent, 2, fromA)
	if r := second.callJSON(t, "GET", "/readyz", "", nil); r.Status != 200 {
		t.Fatalf("readyz = %d %s; want 200", r.Status, r.Body)
	}
}
