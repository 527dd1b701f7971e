package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

// hung bounds every wait of these tests: reaching it means something hung,
// it is never the thing measured.
const hung = 30 * time.Second

// testLog is a migrated database with a PostgreSQL event store.
type testLog struct {
	url   string
	pool  *pgxpool.Pool
	store *postgres.Store
	reg   *domain.Registry
}

func newTestLog(t *testing.T) *testLog {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pool := newPool(t, url, nil)
	if _, err := migrations.Apply(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pool, postgres.Options{PollInterval: 50 * time.Millisecond})
	t.Cleanup(store.Close)
	return &testLog{url: url, pool: pool, store: store, reg: domain.NewRegistry()}
}

// newPool opens a pool on url the way chatd does, after edit changes its
// configuration.
func newPool(t *testing.T, url string, edit func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "readmodel, public"
	if edit != nil {
		edit(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// append appends e to stream and returns its position.
func (l *testLog) append(t *testing.T, stream string, e domain.Event) eventstore.Position {
	t.Helper()
	typ, data, err := l.reg.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	md, err := json.Marshal(domain.Metadata{RequestID: "test", Time: time.Now(), Version: l.reg.Version(typ)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.store.Append(t.Context(), stream, eventstore.Any(),
		eventstore.EventData{ID: uuid.New(), Type: typ, Data: data, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return r.Position
}

// users appends the registrations of users 1..n.
func (l *testLog) users(t *testing.T, n int64) {
	t.Helper()
	for u := int64(1); u <= n; u++ {
		l.append(t, domain.UserStream(u), domain.UserRegistered{UserID: u, Username: fmt.Sprintf("user%d", u), PasswordSet: true})
	}
}

// room appends users 1..users and room 1, created by user 1 alone.
func (l *testLog) room(t *testing.T, users int64) eventstore.Position {
	t.Helper()
	l.users(t, users)
	return l.append(t, domain.ConversationStream(1), domain.ConversationCreated{
		ConversationID: 1, Type: domain.Group, CreatedBy: 1, Members: []domain.Membership{{UserID: 1, MembershipID: 1}}})
}

func (l *testLog) join(t *testing.T, user int64) eventstore.Position {
	t.Helper()
	return l.append(t, domain.ConversationStream(1), domain.MemberJoined{ConversationID: 1, UserID: user, MembershipID: user})
}

func (l *testLog) leave(t *testing.T, user int64) eventstore.Position {
	t.Helper()
	return l.append(t, domain.ConversationStream(1), domain.MemberLeft{ConversationID: 1, UserID: user, MembershipID: user})
}

func (l *testLog) message(t *testing.T, id int64) eventstore.Position {
	t.Helper()
	return l.append(t, domain.ConversationStream(1), domain.MessageSent{ConversationID: 1, MessageID: id, SenderID: 1, Text: "hello"})
}

func (l *testLog) checkpoint(t *testing.T) eventstore.Position {
	t.Helper()
	p, err := projections.ReadCheckpoint(t.Context(), l.pool, migrations.ReadModel, projections.ChatName)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitCheckpoint waits until the live checkpoint is at or past p.
func (l *testLog) waitCheckpoint(t *testing.T, p eventstore.Position) {
	t.Helper()
	waitFor(t, "the checkpoint to reach "+p.String(), func() bool { return !l.checkpoint(t).Less(p) })
}

// member reports whether user is a member of room 1 in the live read model.
func (l *testLog) member(t *testing.T, user int64) bool {
	t.Helper()
	var ok bool
	if err := l.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM readmodel.members
		WHERE conversation_id = 1 AND user_id = $1)`, user).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// waitFor polls cond, which observes state no signal announces (the
// database), until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hung)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("hung waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recv returns the next value of ch, failing the test when none comes.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hung):
		t.Fatalf("hung waiting for %s", what)
		panic("unreachable")
	}
}

// gatedStore subscribes through the real store; once armed, it holds the
// next delivery with events before handing it on, until the gate opens.
// It records where every subscription started.
type gatedStore struct {
	projections.Subscriber
	mu    sync.Mutex
	armed *gate
	froms []eventstore.Position
	subs  chan struct{} // closed and replaced at each subscription
}

type gate struct {
	held    chan []eventstore.RecordedEvent // the held delivery
	release chan struct{}                   // close to let it (and any later one) through
}

func newGatedStore(s projections.Subscriber) *gatedStore {
	return &gatedStore{Subscriber: s, subs: make(chan struct{})}
}

// arm makes the next delivery with events wait for the returned gate.
func (g *gatedStore) arm() *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = &gate{held: make(chan []eventstore.RecordedEvent, 1), release: make(chan struct{})}
	return g.armed
}

func (g *gatedStore) SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error {
	g.mu.Lock()
	g.froms = append(g.froms, from)
	close(g.subs)
	g.subs = make(chan struct{})
	g.mu.Unlock()
	return g.Subscriber.SubscribeAll(ctx, from, func(ctx context.Context, d eventstore.Delivery) error {
		if len(d.Events) > 0 {
			g.mu.Lock()
			gt := g.armed
			g.armed = nil
			g.mu.Unlock()
			if gt != nil {
				gt.held <- d.Events
				select {
				case <-gt.release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return handle(ctx, d)
	})
}

// subscribedFrom returns a channel closed once a subscription has started at
// or past p.
func (g *gatedStore) subscribedFrom(ctx context.Context, p eventstore.Position) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for {
			g.mu.Lock()
			for _, f := range g.froms {
				if !f.Less(p) {
					g.mu.Unlock()
					close(done)
					return
				}
			}
			next := g.subs
			g.mu.Unlock()
			select {
			case <-next:
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

// appliedRecorder records the batches a projector committed.
type appliedRecorder struct {
	mu      sync.Mutex
	through []eventstore.Position
	changed chan struct{}
}

func newAppliedRecorder() *appliedRecorder { return &appliedRecorder{changed: make(chan struct{})} }

func (r *appliedRecorder) record(_ []eventstore.RecordedEvent, through eventstore.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.through = append(r.through, through)
	close(r.changed)
	r.changed = make(chan struct{})
}

// committed returns a channel closed once a batch through p has committed.
func (r *appliedRecorder) committed(ctx context.Context, p eventstore.Position) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for {
			r.mu.Lock()
			for _, th := range r.through {
				if th == p {
					r.mu.Unlock()
					close(done)
					return
				}
			}
			next := r.changed
			r.mu.Unlock()
			select {
			case <-next:
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

// levelRecorder is a slog handler that keeps the records' levels and messages.
type levelRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelRecorder) WithGroup(string) slog.Handler      { return h }

// at returns the messages logged at level or above.
func (h *levelRecorder) at(level slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		if r.Level >= level {
			out = append(out, r.Message)
		}
	}
	return out
}
