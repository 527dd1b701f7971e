package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// keyOf is memKeys' map key of a user's idempotency key.
func keyOf(user int64, key string) string { return fmt.Sprintf("%d:%s", user, key) }

// memKeys is an in-memory commands.SendKeys.
type memKeys struct {
	mu   sync.Mutex
	keys map[string]commands.KeyedSend
	// failComplete makes Complete fail, as a process that dies after its
	// append.
	failComplete bool
}

func (m *memKeys) Claim(_ context.Context, user int64, key string, conv int64, owner uuid.UUID) (commands.KeyedSend, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]commands.KeyedSend{}
	}
	k := keyOf(user, key)
	if prev, ok := m.keys[k]; ok {
		return prev, false, nil
	}
	m.keys[k] = commands.KeyedSend{ConversationID: conv, Owner: owner}
	return commands.KeyedSend{}, true, nil
}

func (m *memKeys) TakeOver(_ context.Context, user int64, key string, from, to uuid.UUID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := keyOf(user, key)
	cur, ok := m.keys[k]
	if !ok || cur.MessageID != 0 || cur.Owner != from {
		return false, nil
	}
	cur.Owner = to
	m.keys[k] = cur
	return true, nil
}

func (m *memKeys) Complete(_ context.Context, user int64, key string, s commands.KeyedSend) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failComplete {
		return errors.New("the process died")
	}
	k := keyOf(user, key)
	if m.keys[k].MessageID == 0 {
		m.keys[k] = s
	}
	return nil
}

func (m *memKeys) Release(_ context.Context, user int64, key string, owner uuid.UUID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := keyOf(user, key)
	if cur, ok := m.keys[k]; ok && cur.MessageID == 0 && cur.Owner == owner {
		delete(m.keys, k)
	}
	return nil
}

// keyedEvents counts the message events in the room that came from a send
// with key (their event id is derived from it), and returns their ids.
func keyedEvents(t *testing.T, m *memStore, room int64) map[string]int {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := map[string]int{}
	for _, e := range m.streams[domain.ConversationStream(room)] {
		n[e.ID.String()]++
	}
	return n
}

// newGroup creates a group room of user 1 through svc and returns its id.
func newGroup(t *testing.T, svc *commands.Service) int64 {
	t.Helper()
	created, err := svc.CreateChatroom(context.Background(), commands.Actor{UserID: 1}, commands.CreateChatroom{Type: domain.Group})
	if err != nil {
		t.Fatal(err)
	}
	return created.Conversation.ID
}

func newKeyedService(store commands.EventStore, keys commands.SendKeys, ids *ids) *commands.Service {
	return commands.New(commands.Config{Store: store, IDs: ids, Lookups: noLookups{}, SendKeys: keys, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
}

// The in-memory store, like EventStoreDB, does not refuse a repeated event
// id at another revision: the key's record and the log must prevent it.

func TestKeyedSendAfterADeathBetweenAppendAndRecord(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	keys := &memKeys{}
	ids := &ids{}
	a := newKeyedService(mem, keys, ids)
	room := newGroup(t, a)
	send := commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "once"}, IdempotencyKey: "k"}

	keys.failComplete = true
	if _, err := a.SendMessage(ctx, commands.Actor{UserID: 1}, send); err == nil {
		t.Fatal("send whose key could not be recorded succeeded")
	}
	keys.failComplete = false
	var original int64
	for _, e := range mem.streams[domain.ConversationStream(room)] {
		if e.Type == domain.TypeMessageSent {
			var m domain.MessageSent
			mustDecode(t, e.Data, &m)
			original = m.MessageID
		}
	}
	// The room moves on far past the tail a retry looks at first.
	for range 150 {
		if _, err := a.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	// The client retries, on another process.
	b := newKeyedService(mem, keys, ids)
	sent, err := b.SendMessage(ctx, commands.Actor{UserID: 1}, send)
	if err != nil {
		t.Fatal(err)
	}
	if !sent.Replayed || sent.Message.MessageID != original {
		t.Fatalf("retry = %+v; want a replay of message %d", sent, original)
	}
	for id, n := range keyedEvents(t, mem, room) {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	// And the key is now complete: the next retry answers from the record.
	again, err := a.SendMessage(ctx, commands.Actor{UserID: 1}, send)
	if err != nil || !again.Replayed || again.Message.MessageID != original {
		t.Fatalf("second retry = %+v, %v; want a replay of %d", again, err, original)
	}
}

func TestConcurrentKeyedSendsOnTwoProcesses(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{memStore: newMemStore()} // appends take a millisecond: races overlap
	keys := &memKeys{}
	ids := &ids{}
	procs := []*commands.Service{newKeyedService(store, keys, ids), newKeyedService(store, keys, ids)}
	var rooms []int64
	for round := range 20 {
		// A new room each round: one process has its state cached, the
		// other loads it, perhaps after the other's append.
		room := newGroup(t, procs[round%2])
		rooms = append(rooms, room)
		key := fmt.Sprintf("key-%d", round)
		got := make([]int64, 6)
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() {
				sent, err := procs[i%2].SendMessage(ctx, commands.Actor{UserID: 1},
					commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: key}, IdempotencyKey: key})
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = sent.Message.MessageID
			})
		}
		wg.Wait()
		for i := range got {
			if got[i] != got[0] {
				t.Fatalf("round %d: requests with one key answered messages %v; want one", round, got)
			}
		}
	}
	for _, room := range rooms {
		for id, n := range keyedEvents(t, store.memStore, room) {
			if n != 1 {
				t.Errorf("room %d: event %s stored %d times; want once", room, id, n)
			}
		}
	}
}

func mustDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// gateStore runs hooks around a shared store's calls, to order two
// processes' steps.
type gateStore struct {
	*memStore
	beforeAppend  func()
	afterAppend   func()
	beforeForward func()
	afterBackward func(count int)
}

func (g *gateStore) Append(ctx context.Context, stream string, exp eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if g.beforeAppend != nil {
		g.beforeAppend()
	}
	res, err := g.memStore.Append(ctx, stream, exp, events...)
	if g.afterAppend != nil {
		g.afterAppend()
	}
	return res, err
}

func (g *gateStore) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	if dir == eventstore.Forwards && g.beforeForward != nil {
		g.beforeForward()
	}
	evs, err := g.memStore.ReadStream(ctx, stream, dir, from, count)
	if dir == eventstore.Backwards && g.afterBackward != nil {
		g.afterBackward(count)
	}
	return evs, err
}

// claimHook runs after each claim.
type claimHook struct {
	*memKeys
	after func(claimed bool)
}

func (c claimHook) Claim(ctx context.Context, user int64, key string, conv int64, owner uuid.UUID) (commands.KeyedSend, bool, error) {
	k, claimed, err := c.memKeys.Claim(ctx, user, key, conv, owner)
	c.after(claimed)
	return k, claimed, err
}

// TestKeyedSendFindsTheEventInTheStateItLoads orders the race that a
// plain event id does not survive on EventStoreDB: B finds A's claim, does
// not find A's event yet, and loads the room only after A's append, so its
// own append at the new head would not conflict.
func TestKeyedSendFindsTheEventInTheStateItLoads(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	keys := &memKeys{}
	ids := &ids{}
	room := newGroup(t, newKeyedService(mem, keys, ids))

	aClaimed, bSearched, aAppended := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var onceB sync.Once
	storeA := &gateStore{memStore: mem, beforeAppend: func() { <-bSearched }, afterAppend: func() { close(aAppended) }}
	storeB := &gateStore{memStore: mem,
		afterBackward: func(count int) {
			if count > 1 { // findMessage's read, not the head's
				onceB.Do(func() { close(bSearched) })
			}
		},
		beforeForward: func() { <-aAppended },
	}
	a := newKeyedService(storeA, claimHook{keys, func(bool) { close(aClaimed) }}, ids)
	b := newKeyedService(storeB, keys, ids)
	send := commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "once"}, IdempotencyKey: "k"}

	results := make(chan commands.Sent, 2)
	errs := make(chan error, 2)
	go func() {
		sent, err := a.SendMessage(ctx, commands.Actor{UserID: 1}, send)
		results <- sent
		errs <- err
	}()
	<-aClaimed
	go func() {
		sent, err := b.SendMessage(ctx, commands.Actor{UserID: 1}, send)
		results <- sent
		errs <- err
	}()
	first, second := <-results, <-results
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if first.Message.MessageID != second.Message.MessageID {
		t.Errorf("one key answered messages %d and %d", first.Message.MessageID, second.Message.MessageID)
	}
	for id, n := range keyedEvents(t, mem, room) {
		if n != 1 {
			t.Errorf("event %s stored %d times; want once", id, n)
		}
	}
}
