package chatd_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/eventstore/esdbtest"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
)

// copySessions carries the login sessions of one database over to another,
// as a restore from a backup does.
func copySessions(t testing.TB, from, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := pgx.Connect(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	dst, err := pgx.Connect(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(context.Background())
	rows, err := src.Query(ctx, `SELECT id::text, user_id, refresh_jti::text, expires_at FROM public.auth_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	type session struct {
		id, jti string
		user    int64
		expires time.Time
	}
	sessions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (session, error) {
		var s session
		return s, r.Scan(&s.id, &s.user, &s.jti, &s.expires)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if _, err := dst.Exec(ctx, `INSERT INTO public.auth_sessions (id, user_id, refresh_jti, expires_at) VALUES ($1, $2, $3, $4)`,
			s.id, s.user, s.jti, s.expires); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNoIDsBeforeTheReadModelCatchesUp starts a server on a new database for
// an EventStoreDB log that has messages in two rooms, with its projector
// held back. The id sequences lag the log until the projector has caught
// up, so a write that needs an id is refused with 503 meanwhile (before,
// a send took an id of the other room's messages, and the read model kept
// only one of the two); once caught up, new ids lie past the log's.
func TestNoIDsBeforeTheReadModelCatchesUp(t *testing.T) {
	t.Parallel()
	es := esdbtest.Start(t, esdbtest.Options{})
	cfg := chatd.Config{
		Addr: "127.0.0.1:0", DatabaseURL: pgtest.NewDatabase(t), DataDir: t.TempDir(),
		EventStoreURL: es.URL(), JWTKeyFile: t.TempDir() + "/jwt.pem", BcryptCost: 4, LeaderRetry: 100 * time.Millisecond,
	}
	a := startWith(t, cfg)
	alice, bob := a.newUser(), a.newUser()
	rooms := []int64{a.room(alice, bob), a.room(bob, alice)}
	sent := map[int64][]int64{}
	for i := range 3 {
		for _, room := range rooms {
			sent[room] = append(sent[room], a.send(alice, room, fmt.Sprintf("before %d", i)))
		}
	}
	keys := userKeyRows(t, a)
	a.stop()

	// The projector's batches fail until the test lets them through (they
	// roll back at once: no transaction stays open to hold other readers).
	var held atomic.Bool
	held.Store(true)
	first := cfg.DatabaseURL
	cfg.DatabaseURL = pgtest.NewDatabase(t)
	cfg.ProjectionWait = 200 * time.Millisecond
	cfg.Hooks.ProjectorBeforeCommit = func(context.Context) error {
		if held.Load() {
			return errors.New("held back by the test")
		}
		return nil
	}
	restoreUserKeys(t, cfg, keys) // write-side state, like the sessions
	b := startWith(t, cfg)
	copySessions(t, first, cfg.DatabaseURL)
	early := b.do("POST", "/send-message/", alice.Access, map[string]any{"conversation_id": rooms[0], "text": "too early"})
	for name, r := range map[string]response{
		"send":     early,
		"register": b.do("POST", "/auth/register/", "", map[string]string{"username": "early_bird", "password": "correct-horse-1"}),
	} {
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || r.text() != `{"detail":"Service temporarily unavailable."}` {
			t.Errorf("%s before the read model caught up: %d %s (Retry-After %q); want 503 with Retry-After",
				name, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	if early.Status == http.StatusCreated { // it is in the log: the room must list it
		sent[rooms[0]] = append(sent[rooms[0]], decodeMessage(t, early.Body).ID)
	}

	held.Store(false)
	b.caughtUp()
	id := b.send(alice, rooms[0], "after")
	b.caughtUp()
	if last := slices.Max(slices.Concat(sent[rooms[0]], sent[rooms[1]])); id <= last {
		t.Errorf("new message id %d; want past the log's %d", id, last)
	}
	sent[rooms[0]] = append(sent[rooms[0]], id)
	for _, room := range rooms {
		if got := ids(firstOf(b.conversationMessages(t, alice, room, "?limit=200"))); !slices.Equal(got, sent[room]) {
			t.Errorf("room %d lists %v; want %v", room, got, sent[room])
		}
	}
}
