package commands_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

type plainHasher struct{}

func (plainHasher) Hash(p string) (string, error) { return "plain:" + p, nil }

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// failUserAppends fails every append to a user stream, as a registration
// that dies between its two appends.
type failUserAppends struct{ *memStore }

func (f failUserAppends) Append(ctx context.Context, stream string, exp eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if len(stream) > 5 && stream[:5] == "user-" {
		return eventstore.AppendResult{}, eventstore.ErrUnavailable
	}
	return f.memStore.Append(ctx, stream, exp, events...)
}

func TestOrphanUsernameReservationIsReclaimed(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	mem.now = clk.now
	ids := &ids{}
	newSvc := func(store commands.EventStore) *commands.Service {
		return commands.New(commands.Config{Store: store, IDs: ids, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Now: clk.now})
	}
	reg := commands.Register{Username: "Alice", Password: "a-long-password-1"}

	// The first registration reserves the name and dies before its user.
	if _, err := newSvc(failUserAppends{mem}).Register(ctx, commands.Actor{}, reg, plainHasher{}); err == nil {
		t.Fatal("registration with failing user appends succeeded")
	}
	svc := newSvc(mem)
	// Soon after, the name still counts as taken: that registration may be
	// completing.
	clk.add(time.Minute)
	if _, err := svc.Register(ctx, commands.Actor{}, reg, plainHasher{}); err != domain.ErrUsernameTaken {
		t.Fatalf("register during the reservation's grace period: %v; want username taken", err)
	}
	// Later it is reclaimed.
	clk.add(10 * time.Minute)
	got, err := svc.Register(ctx, commands.Actor{}, reg, plainHasher{})
	if err != nil {
		t.Fatalf("register after the orphan's grace period: %v", err)
	}
	reservations := mem.streams[domain.UsernameStream("alice")]
	if len(reservations) != 2 {
		t.Fatalf("reservation stream has %d events; want the orphan's and the reclaim", len(reservations))
	}
	if _, ok := mem.streams[domain.UserStream(got.UserID)]; !ok {
		t.Fatalf("user %d was not created", got.UserID)
	}
	// A completed registration is never reclaimed, however old.
	clk.add(24 * time.Hour)
	for _, name := range []string{"Alice", "ALICE"} {
		if _, err := svc.Register(ctx, commands.Actor{}, commands.Register{Username: name, Password: "another-password-2"}, plainHasher{}); err != domain.ErrUsernameTaken {
			t.Errorf("register %q over a live user: %v; want username taken", name, err)
		}
	}
}

// hookStore runs hooks around the calls of a shared store, to stop one
// process at a named point.
type hookStore struct {
	*memStore
	beforeAppend func(stream string) error // a non-nil error fails the append
	afterRead    func(stream string)
}

func (h hookStore) Append(ctx context.Context, stream string, exp eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if h.beforeAppend != nil {
		if err := h.beforeAppend(stream); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	return h.memStore.Append(ctx, stream, exp, events...)
}

func (h hookStore) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	evs, err := h.memStore.ReadStream(ctx, stream, dir, from, count)
	if h.afterRead != nil {
		h.afterRead(stream)
	}
	return evs, err
}

type registration struct {
	commands.Registered
	err error
}

func registerAsync(s *commands.Service, name, password string) <-chan registration {
	out := make(chan registration, 1)
	go func() {
		r, err := s.Register(context.Background(), commands.Actor{}, commands.Register{Username: name, Password: password}, plainHasher{})
		out <- registration{r, err}
	}()
	return out
}

// nameHolders returns, from the log, the ids of the users registered with
// the name, and the user id of its last reservation.
func nameHolders(t *testing.T, m *memStore, lower string) (users []int64, reserved int64) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for stream, events := range m.streams {
		if !strings.HasPrefix(stream, "user-") {
			continue
		}
		for _, e := range events {
			if e.Type == domain.TypeUserRegistered {
				var u domain.UserRegistered
				mustDecode(t, e.Data, &u)
				if domain.NormalizeUsername(u.Username) == lower {
					users = append(users, u.UserID)
				}
			}
		}
	}
	if rs := m.streams[domain.UsernameStream(lower)]; len(rs) > 0 {
		var r domain.UsernameReserved
		mustDecode(t, rs[len(rs)-1].Data, &r)
		reserved = r.UserID
	}
	return users, reserved
}

// wantOneHolder checks that exactly one of two registrations of one name
// succeeded, that the log agrees, and returns the winner.
func wantOneHolder(t *testing.T, m *memStore, lower string, a, b registration) registration {
	t.Helper()
	users, reserved := nameHolders(t, m, lower)
	if (a.err == nil) == (b.err == nil) || len(users) != 1 {
		t.Fatalf("registrations of %q: (%d, %v) and (%d, %v); users with the name in the log: %v; want exactly one",
			lower, a.UserID, a.err, b.UserID, b.err, users)
	}
	won := a
	if b.err == nil {
		won = b
	}
	if users[0] != won.UserID || reserved != won.UserID {
		t.Fatalf("user %d won %q; the log has user %v and a reservation for %d", won.UserID, lower, users, reserved)
	}
	return won
}

// A registration that stalls between reserving its name and creating its
// user, long enough for its reservation to be reclaimed, must not create
// its user after the reclaim did: one name, one user.
func TestReclaimWhileTheOriginalRegistrationStalls(t *testing.T) {
	mem := newMemStore()
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	mem.now = clk.now
	seq := &ids{}
	newSvc := func(store commands.EventStore) *commands.Service {
		return commands.New(commands.Config{Store: store, IDs: seq, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Now: clk.now})
	}
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	original := newSvc(hookStore{memStore: mem, beforeAppend: func(stream string) error {
		if strings.HasPrefix(stream, "user-") {
			once.Do(func() { close(paused); <-resume })
		}
		return nil
	}})
	first := registerAsync(original, "Alice", "a-long-password-1")
	within(t, paused, "the original registration to reserve the name")
	clk.add(10 * time.Minute)
	reclaim := within(t, registerAsync(newSvc(mem), "alice", "another-password-2"), "the reclaim")
	close(resume)
	orig := within(t, first, "the original registration")
	if won := wantOneHolder(t, mem, "alice", orig, reclaim); won != reclaim {
		t.Errorf("the original registration kept the name; want the reclaim to, as it ran first")
	}
	if !errors.Is(orig.err, commands.ErrRegistrationAbandoned) {
		t.Errorf("original registration: %v; want ErrRegistrationAbandoned", orig.err)
	}
}

// The other order: the original registration creates its user while a
// reclaim, having read the old reservation, is about to take the name.
func TestOriginalRegistrationCompletesDuringAReclaim(t *testing.T) {
	mem := newMemStore()
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	mem.now = clk.now
	seq := &ids{}
	newSvc := func(store commands.EventStore) *commands.Service {
		return commands.New(commands.Config{Store: store, IDs: seq, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Now: clk.now})
	}
	origPaused, origResume := make(chan struct{}), make(chan struct{})
	var onceO sync.Once
	original := newSvc(hookStore{memStore: mem, beforeAppend: func(stream string) error {
		if strings.HasPrefix(stream, "user-") {
			onceO.Do(func() { close(origPaused); <-origResume })
		}
		return nil
	}})
	recPaused, recResume := make(chan struct{}), make(chan struct{})
	var onceR sync.Once
	reclaimer := newSvc(hookStore{memStore: mem, afterRead: func(stream string) {
		if strings.HasPrefix(stream, "username-") {
			onceR.Do(func() { close(recPaused); <-recResume })
		}
	}})
	first := registerAsync(original, "Bob", "a-long-password-1")
	within(t, origPaused, "the original registration to reserve the name")
	clk.add(10 * time.Minute)
	second := registerAsync(reclaimer, "bob", "another-password-2")
	within(t, recPaused, "the reclaim to read the reservation")
	close(origResume)
	orig := within(t, first, "the original registration")
	close(recResume)
	reclaim := within(t, second, "the reclaim")
	if won := wantOneHolder(t, mem, "bob", orig, reclaim); won != orig {
		t.Errorf("the reclaim took the name of a user created before it; want the original to keep it")
	}
	if reclaim.err != domain.ErrUsernameTaken {
		t.Errorf("reclaim: %v; want username taken", reclaim.err)
	}
}

// A reclaim that dies after closing the orphan's user stream and before
// taking the name leaves the name free for the next one.
func TestReclaimAfterAReclaimDiedHalfway(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	mem.now = clk.now
	seq := &ids{}
	newSvc := func(store commands.EventStore) *commands.Service {
		return commands.New(commands.Config{Store: store, IDs: seq, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Now: clk.now})
	}
	reg := commands.Register{Username: "carol", Password: "a-long-password-1"}
	if _, err := newSvc(failUserAppends{mem}).Register(ctx, commands.Actor{}, reg, plainHasher{}); err == nil {
		t.Fatal("registration with failing user appends succeeded")
	}
	clk.add(10 * time.Minute)
	reservations := 0
	dying := newSvc(hookStore{memStore: mem, beforeAppend: func(stream string) error {
		if strings.HasPrefix(stream, "username-") {
			if reservations++; reservations > 1 { // the reclaim, not the first try
				return eventstore.ErrUnavailable
			}
		}
		return nil
	}})
	if _, err := dying.Register(ctx, commands.Actor{}, reg, plainHasher{}); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("reclaim that dies before reserving: %v; want the store's error", err)
	}
	got, err := newSvc(mem).Register(ctx, commands.Actor{}, reg, plainHasher{})
	if err != nil {
		t.Fatalf("reclaim after a reclaim died halfway: %v", err)
	}
	if users, reserved := nameHolders(t, mem, "carol"); len(users) != 1 || users[0] != got.UserID || reserved != got.UserID {
		t.Errorf("log has users %v and a reservation for %d; want user %d", users, reserved, got.UserID)
	}
}

// A reservation's age is measured on the store's clock: a registration on
// a host whose clock is behind is not reclaimed while it may be running.
func TestReclaimAgeIsTheStoresTime(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	mem.now = clk.now
	seq := &ids{}
	behind := func() time.Time { return clk.now().Add(-time.Hour) }
	reg := commands.Register{Username: "dave", Password: "a-long-password-1"}
	slow := commands.New(commands.Config{Store: failUserAppends{mem}, IDs: seq, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Now: behind})
	if _, err := slow.Register(ctx, commands.Actor{}, reg, plainHasher{}); err == nil {
		t.Fatal("registration with failing user appends succeeded")
	}
	clk.add(time.Minute)
	svc := commands.New(commands.Config{Store: mem, IDs: seq, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Now: clk.now})
	if _, err := svc.Register(ctx, commands.Actor{}, reg, plainHasher{}); err != domain.ErrUsernameTaken {
		t.Fatalf("register a minute after a reservation stamped an hour earlier by its writer: %v; want username taken", err)
	}
}

// discardCredentials stores no password hashes.
type discardCredentials struct{}

func (discardCredentials) Set(context.Context, int64, string) error { return nil }
func (discardCredentials) Delete(context.Context, int64) error      { return nil }
