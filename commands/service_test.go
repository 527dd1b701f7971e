package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// memStore is an in-memory event store for the command tests: streams with
// exact-revision appends, enough for the write side.
type memStore struct {
	mu      sync.Mutex
	streams map[string][]eventstore.RecordedEvent
	pos     uint64
	// now is the store's clock, which stamps recorded events (default
	// time.Now).
	now func() time.Time
}

func newMemStore() *memStore { return &memStore{streams: map[string][]eventstore.RecordedEvent{}} }

func (m *memStore) Append(_ context.Context, stream string, exp eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := int64(len(m.streams[stream])) - 1
	ok := exp.IsAny() || (exp.IsNoStream() && cur < 0) || (exp.IsStreamExists() && cur >= 0)
	if r, exact := exp.Revision(); exact {
		ok = int64(r) == cur
	}
	if !ok {
		return eventstore.AppendResult{}, &eventstore.WrongExpectedVersionError{Stream: stream, Expected: exp, Actual: cur}
	}
	var res eventstore.AppendResult
	created := time.Now()
	if m.now != nil {
		created = m.now()
	}
	for _, e := range events {
		m.pos++
		rev := uint64(len(m.streams[stream]))
		m.streams[stream] = append(m.streams[stream], eventstore.RecordedEvent{
			ID: e.ID, Stream: stream, Revision: rev, Position: eventstore.Position{Commit: m.pos, Prepare: m.pos},
			Type: e.Type, Data: e.Data, Metadata: e.Metadata, Created: created.UTC(),
		})
		res = eventstore.AppendResult{Revision: rev, Position: eventstore.Position{Commit: m.pos, Prepare: m.pos}}
	}
	return res, nil
}

func (m *memStore) ReadStream(_ context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs, ok := m.streams[stream]
	if !ok {
		return nil, eventstore.ErrStreamNotFound
	}
	if dir == eventstore.Backwards {
		var out []eventstore.RecordedEvent
		for i := int64(min(from, uint64(len(evs)-1))); i >= 0 && len(out) < count; i-- {
			out = append(out, evs[i])
		}
		return out, nil
	}
	if from >= uint64(len(evs)) {
		return nil, nil
	}
	return append([]eventstore.RecordedEvent(nil), evs[from:min(uint64(len(evs)), from+uint64(count))]...), nil
}

type ids struct {
	mu   sync.Mutex
	next map[commands.IDKind]int64
}

func (i *ids) Next(_ context.Context, k commands.IDKind) (int64, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.next == nil {
		i.next = map[commands.IDKind]int64{}
	}
	i.next[k]++
	return i.next[k], nil
}

func (i *ids) NextN(ctx context.Context, k commands.IDKind, n int) ([]int64, error) {
	out := make([]int64, n)
	for j := range out {
		out[j], _ = i.Next(ctx, k)
	}
	return out, nil
}

type noLookups struct{}

func (noLookups) MissingUsers(context.Context, []int64) ([]int64, error) { return nil, nil }
func (noLookups) UsernameTaken(context.Context, string) (bool, error)    { return false, nil }
func (noLookups) ReceiptTargets(context.Context, int64, int64, []int64) ([]int64, []int64, error) {
	return nil, nil, nil
}

func newService(store *memStore) *commands.Service {
	return commands.New(commands.Config{Store: store, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
}

// Two processes share a log; each has its own state cache. Decisions made
// on one process's stale cache must not stand.
func TestStaleCacheAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	a, b := newService(store), newService(store)
	created, err := a.CreateChatroom(ctx, commands.Actor{UserID: 1}, commands.CreateChatroom{Type: domain.Group})
	if err != nil {
		t.Fatal(err)
	}
	room := created.Conversation.ID
	// b caches the room with user 1 only.
	if _, err := b.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "hi"}}); err != nil {
		t.Fatal(err)
	}
	// User 2 joins through a; b's cache does not know.
	if _, err := a.JoinChatroom(ctx, commands.Actor{UserID: 2}, room, ""); err != nil {
		t.Fatal(err)
	}
	// b must let user 2 send (a refusal from stale state would be wrong)...
	sent, err := b.SendMessage(ctx, commands.Actor{UserID: 2}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "me too"}})
	if err != nil {
		t.Fatalf("send by a member b's cache did not know: %v", err)
	}
	if got := sent.Message.Receivers; len(got) != 1 || got[0] != 1 {
		t.Errorf("receivers = %v; want [1]", got)
	}
	// ...and b's send from user 1 after user 2 joined (its cache now fresh
	// through the retry) must list user 2 as a receiver.
	sent, err = b.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "welcome"}})
	if err != nil || len(sent.Message.Receivers) != 1 || sent.Message.Receivers[0] != 2 {
		t.Fatalf("send = %+v, %v; want receiver 2", sent.Message, err)
	}
	// User 2 leaves through a; b, with user 2 cached as a member, must refuse.
	if _, err := a.LeaveChatroom(ctx, commands.Actor{UserID: 2}, room); err != nil {
		t.Fatal(err)
	}
	_, err = b.SendMessage(ctx, commands.Actor{UserID: 2}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "ghost"}})
	if !errors.Is(err, domain.ErrNotMember) {
		t.Fatalf("send by a former member through a stale cache: %v; want ErrNotMember", err)
	}
	// Joining again through b while b's cache says "not a member" works, and
	// b's "already a member" answer after a's join is not stale either.
	if j, err := b.JoinChatroom(ctx, commands.Actor{UserID: 2}, room, ""); err != nil || !j.New {
		t.Fatalf("rejoin through b = %+v, %v; want a new membership", j, err)
	}
	if _, err := a.LeaveChatroom(ctx, commands.Actor{UserID: 2}, room); err != nil {
		t.Fatal(err)
	}
	if j, err := b.JoinChatroom(ctx, commands.Actor{UserID: 2}, room, ""); err != nil || !j.New {
		t.Fatalf("join through b after leaving through a = %+v, %v; want a new membership, not the stale one", j, err)
	}
	// Message ids rise in the room's log order.
	var last int64
	for _, e := range store.streams[domain.ConversationStream(room)] {
		if e.Type == domain.TypeMessageSent {
			var m struct {
				MessageID int64 `json:"message_id"`
			}
			_ = json.Unmarshal(e.Data, &m)
			if m.MessageID <= last {
				t.Errorf("message id %d after %d in log order", m.MessageID, last)
			}
			last = m.MessageID
		}
	}
}

// countingStore counts appends, each of which takes a millisecond, as a
// commit does: sends that arrive meanwhile queue up.
type countingStore struct {
	*memStore
	mu      sync.Mutex
	appends int
}

func (c *countingStore) Append(ctx context.Context, stream string, exp eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	c.mu.Lock()
	c.appends++
	c.mu.Unlock()
	time.Sleep(time.Millisecond)
	return c.memStore.Append(ctx, stream, exp, events...)
}

func TestConcurrentSendsIntoOneRoomAreCombined(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{memStore: newMemStore()}
	s := commands.New(commands.Config{Store: store, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	members := []int64{2, 3, 4, 5}
	created, err := s.CreateChatroom(ctx, commands.Actor{UserID: 1}, commands.CreateChatroom{Type: domain.Group})
	if err != nil {
		t.Fatal(err)
	}
	room := created.Conversation.ID
	for _, m := range members {
		if _, err := s.JoinChatroom(ctx, commands.Actor{UserID: m}, room, ""); err != nil {
			t.Fatal(err)
		}
	}
	before := store.appends
	const senders, each = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := int64(g%6 + 1) // user 6 is not a member
			for i := range each {
				sent, err := s.SendMessage(ctx, commands.Actor{UserID: user, RequestID: fmt.Sprintf("r%d-%d", g, i)},
					commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "x"}})
				switch {
				case user == 6 && !errors.Is(err, domain.ErrNotMember):
					errs <- fmt.Errorf("non-member send: %v; want ErrNotMember", err)
				case user != 6 && err != nil:
					errs <- err
				case user != 6 && (sent.Message.SenderID != user || sent.Position.IsZero() || sent.At.IsZero()):
					errs <- fmt.Errorf("send result %+v for user %d", sent, user)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var last int64
	sent := 0
	for _, e := range store.streams[domain.ConversationStream(room)] {
		if e.Type != domain.TypeMessageSent {
			continue
		}
		var m struct {
			MessageID int64 `json:"message_id"`
			SenderID  int64 `json:"sender_id"`
		}
		var md domain.Metadata
		_ = json.Unmarshal(e.Data, &m)
		_ = json.Unmarshal(e.Metadata, &md)
		if m.MessageID <= last {
			t.Errorf("message id %d after %d in log order", m.MessageID, last)
		}
		if md.ActorID != m.SenderID || md.RequestID == "" {
			t.Errorf("event metadata %+v for sender %d; want its own actor and request", md, m.SenderID)
		}
		last = m.MessageID
		sent++
	}
	if want := 17 * each; sent != want { // goroutines 5, 11 and 17 send as user 6
		t.Errorf("%d messages stored; want %d", sent, want)
	}
	if appends := store.appends - before; appends >= sent {
		t.Errorf("%d appends for %d sends: nothing was combined", appends, sent)
	}
}

// Two processes take message ids in blocks from one sequence and send into
// one room at the same time: ids must still rise in the room's log order.
func TestMessageIDsRiseAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	seq := &ids{} // one sequence, as in one database
	newProc := func() *commands.Service {
		return commands.New(commands.Config{Store: store, IDs: seq, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	}
	a, b := newProc(), newProc()
	created, err := a.CreateChatroom(ctx, commands.Actor{UserID: 1}, commands.CreateChatroom{Type: domain.Group})
	if err != nil {
		t.Fatal(err)
	}
	room := created.Conversation.ID
	var wg sync.WaitGroup
	for g, proc := range []*commands.Service{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := proc.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{
					ConversationID: room, Content: domain.MessageContent{Text: fmt.Sprint(g, i)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var last int64
	seen := map[int64]bool{}
	for _, e := range store.streams[domain.ConversationStream(room)] {
		if e.Type != domain.TypeMessageSent {
			continue
		}
		var m struct {
			MessageID int64 `json:"message_id"`
		}
		_ = json.Unmarshal(e.Data, &m)
		if m.MessageID <= last || seen[m.MessageID] {
			t.Fatalf("message id %d after %d in log order", m.MessageID, last)
		}
		seen[m.MessageID], last = true, m.MessageID
	}
	if len(seen) != 200 {
		t.Errorf("%d messages stored; want 200", len(seen))
	}
}
