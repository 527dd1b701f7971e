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

// projected is a read model's progress that the test moves by hand.
type projected struct {
	mu      sync.Mutex
	pos     eventstore.Position
	changed chan struct{}
	waiting chan struct{} // when set, told of each wait that blocks
}

func newProjected() *projected { return &projected{changed: make(chan struct{})} }

func (p *projected) Wait(ctx context.Context, to eventstore.Position) error {
	for {
		p.mu.Lock()
		reached, ch, waiting := !p.pos.Less(to), p.changed, p.waiting
		p.mu.Unlock()
		if reached {
			return nil
		}
		if waiting != nil {
			waiting <- struct{}{}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (p *projected) advance(to eventstore.Position) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos = to
	close(p.changed)
	p.changed = make(chan struct{})
}

// head is the position of the store's last event.
func (m *memStore) head() eventstore.Position {
	m.mu.Lock()
	defer m.mu.Unlock()
	return eventstore.Position{Commit: m.pos, Prepare: m.pos}
}

// messageIDs returns the ids of every message in the log.
func (m *memStore) messageIDs(t *testing.T) []int64 {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int64
	for _, events := range m.streams {
		for _, e := range events {
			if e.Type == domain.TypeMessageSent {
				var msg domain.MessageSent
				mustDecode(t, e.Data, &msg)
				out = append(out, msg.MessageID)
			}
		}
	}
	return out
}

// A process that starts on a read model younger than its log (a new
// database for an EventStoreDB log, a restore by replay) has id sequences
// behind the log until the projector has caught up: it must take no id
// before then, or a message takes an id another room's message has.
func TestNoIDsBeforeTheReadModelHasCaughtUpWithTheLog(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	old := commands.New(commands.Config{Store: mem, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	rooms := []int64{newGroup(t, old), newGroup(t, old)}
	for _, room := range rooms {
		for range 3 {
			if _, err := old.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "before"}}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The new process: fresh sequences, a read model at the start of the log.
	fresh, rm, keys := &ids{}, newProjected(), &memKeys{}
	newProc := func(wait time.Duration) *commands.Service {
		return commands.New(commands.Config{Store: mem, IDs: fresh, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{},
			SendKeys: keys, Projected: rm, IDsAfter: mem.head(), IDsWait: wait})
	}
	keyed := commands.SendMessage{ConversationID: rooms[1], Content: domain.MessageContent{Text: "keyed"}, IdempotencyKey: "k"}
	svc := newProc(time.Millisecond)
	u1 := commands.Actor{UserID: 1}
	for name, try := range map[string]func() error{
		"send": func() error {
			_, err := svc.SendMessage(ctx, u1, commands.SendMessage{ConversationID: rooms[0], Content: domain.MessageContent{Text: "too early"}})
			return err
		},
		"send with a key": func() error { _, err := svc.SendMessage(ctx, u1, keyed); return err },
		"create a room": func() error {
			_, err := svc.CreateChatroom(ctx, u1, commands.CreateChatroom{Type: domain.Group})
			return err
		},
		"join": func() error { _, err := svc.JoinChatroom(ctx, commands.Actor{UserID: 2}, rooms[1], ""); return err },
		"register": func() error {
			_, err := svc.Register(ctx, commands.Actor{}, commands.Register{Username: "early", Password: "a-long-password-1"}, plainHasher{})
			return err
		},
	} {
		if err := try(); domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("%s before the read model caught up: %v; want unavailable", name, err)
		}
	}
	wantUniqueMessageIDs(t, mem)
	if n := len(mem.messageIDs(t)); n != 6 {
		t.Fatalf("%d messages in the log; want the 6 sent before", n)
	}

	// A send waiting at the gate goes through once the projector has caught
	// up: it has moved the sequences past the log's ids.
	rm.mu.Lock()
	rm.waiting = make(chan struct{})
	rm.mu.Unlock()
	waiting := newProc(hung)
	sent := make(chan sendOutcome, 1)
	go func() {
		s, err := waiting.SendMessage(ctx, u1, commands.SendMessage{ConversationID: rooms[0], Content: domain.MessageContent{Text: "after"}})
		sent <- sendOutcome{s, err}
	}()
	within(t, rm.waiting, "the send to wait for the read model")
	fresh.mu.Lock() // the projector's setval: past every id in the log
	fresh.next = map[commands.IDKind]int64{commands.ConversationIDs: 2, commands.MembershipIDs: 2, commands.MessageIDs: 6}
	fresh.mu.Unlock()
	rm.advance(mem.head())
	if r := within(t, sent, "the send after the read model caught up"); r.err != nil {
		t.Fatalf("send after the read model caught up: %v", r.err)
	}
	// The refused keyed send left its key free.
	if r, err := waiting.SendMessage(ctx, u1, keyed); err != nil || r.Replayed {
		t.Fatalf("keyed send after the read model caught up = %+v, %v; want a new message", r, err)
	}
	wantUniqueMessageIDs(t, mem)
}

func wantUniqueMessageIDs(t *testing.T, m *memStore) {
	t.Helper()
	seen := map[int64]bool{}
	for _, id := range m.messageIDs(t) {
		if seen[id] {
			t.Errorf("message id %d used twice in the log", id)
		}
		seen[id] = true
	}
}
