package commands_test

import (
	"context"
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
	ids := &ids{}
	newSvc := func(store commands.EventStore) *commands.Service {
		return commands.New(commands.Config{Store: store, IDs: ids, ReadModel: noReadModel{}, Registry: domain.NewRegistry(), Now: clk.now})
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
