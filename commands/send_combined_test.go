package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// hung bounds a wait that only a hang exceeds.
const hung = 20 * time.Second

// heldAppends holds the next appends to conversation streams until the
// test releases them, one by one; appends past the held ones go through.
type heldAppends struct {
	*memStore
	hold    atomic.Int32  // how many of the next appends to hold
	entered chan struct{} // a held append has started
	release chan struct{} // lets one held append go on
	stop    chan struct{} // closed at the end of the test: lets every one go
}

func newHeldAppends(t *testing.T) *heldAppends {
	h := &heldAppends{memStore: newMemStore(), entered: make(chan struct{}), release: make(chan struct{}), stop: make(chan struct{})}
	t.Cleanup(func() { close(h.stop) })
	return h
}

func (h *heldAppends) Append(ctx context.Context, stream string, exp eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if strings.HasPrefix(stream, "conversation-") && h.hold.Add(-1) >= 0 {
		select {
		case h.entered <- struct{}{}:
		case <-h.stop:
		}
		select {
		case <-h.release:
		case <-h.stop:
		}
	}
	return h.memStore.Append(ctx, stream, exp, events...)
}

// within waits for ch, failing the test when that takes as long as a hang.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hung):
		t.Fatalf("%s: hung", what)
		panic("unreachable")
	}
}

// queuedBehind waits until n sends wait in the room's queue.
func queuedBehind(t *testing.T, s *commands.Service, room int64, n int) {
	t.Helper()
	deadline := time.Now().Add(hung)
	for commands.PendingSends(s, room) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sends queued; want %d", commands.PendingSends(s, room), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type sendOutcome struct {
	sent commands.Sent
	err  error
}

func sendAsync(ctx context.Context, s *commands.Service, room int64, text string) <-chan sendOutcome {
	out := make(chan sendOutcome, 1)
	go func() {
		sent, err := s.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: text}})
		out <- sendOutcome{sent, err}
	}()
	return out
}

// texts returns the texts of the room's messages in log order.
func texts(t *testing.T, m *memStore, room int64) []string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.streams[domain.ConversationStream(room)] {
		if e.Type == domain.TypeMessageSent {
			var msg domain.MessageSent
			if err := json.Unmarshal(e.Data, &msg); err != nil {
				t.Fatal(err)
			}
			out = append(out, msg.Text)
		}
	}
	return out
}

// The first sender into a room must not wait for the sends that queued
// behind it: it answers once its own append is done.
func TestFirstSenderDoesNotWaitForTheSendsBehindIt(t *testing.T) {
	ctx := context.Background()
	store := newHeldAppends(t)
	s := commands.New(commands.Config{Store: store, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	room := newGroup(t, s)
	store.hold.Store(2)

	a := sendAsync(ctx, s, room, "a")
	within(t, store.entered, "a's append to start")
	b := sendAsync(ctx, s, room, "b")
	queuedBehind(t, s, room, 1)
	store.release <- struct{}{} // a's append lands; b's batch comes next

	if r := within(t, a, "a's answer while b's append is held"); r.err != nil || r.sent.Message.Text != "a" {
		t.Fatalf("a = %+v, %v; want its message", r.sent.Message, r.err)
	}
	within(t, store.entered, "b's append to start")
	store.release <- struct{}{}
	if r := within(t, b, "b's answer"); r.err != nil || r.sent.Message.Text != "b" {
		t.Fatalf("b = %+v, %v; want its message", r.sent.Message, r.err)
	}
	if got := texts(t, store.memStore, room); strings.Join(got, ",") != "a,b" {
		t.Errorf("room holds %q; want a, b", got)
	}
}

// A queued send whose caller gave up before its batch was formed is never
// appended: the caller was told it failed, and a retry without a key would
// store it twice.
func TestAbandonedQueuedSendIsNotAppended(t *testing.T) {
	ctx := context.Background()
	store := newHeldAppends(t)
	s := commands.New(commands.Config{Store: store, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	room := newGroup(t, s)
	store.hold.Store(1)

	a := sendAsync(ctx, s, room, "a")
	within(t, store.entered, "a's append to start")
	bctx, cancel := context.WithCancel(ctx)
	b := sendAsync(bctx, s, room, "b")
	queuedBehind(t, s, room, 1)
	cancel()
	if r := within(t, b, "b's answer after its cancel"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("b = %+v, %v; want context.Canceled", r.sent.Message, r.err)
	}
	store.release <- struct{}{}
	if r := within(t, a, "a's answer"); r.err != nil {
		t.Fatalf("a: %v", r.err)
	}
	// c queues behind anything still to come from the queue b was in.
	if r := within(t, sendAsync(ctx, s, room, "c"), "c's answer"); r.err != nil {
		t.Fatalf("c: %v", r.err)
	}
	if got := texts(t, store.memStore, room); strings.Join(got, ",") != "a,c" {
		t.Errorf("room holds %q; want a, c: the abandoned b must not be appended", got)
	}
}

// A batch of sends works on a copy that shares the cached state's maps
// (convState.forSends): the state a send leaves in the cache must still
// see a member who joins after it, and the states cached before must not
// change.
func TestSendsShareNoChangeWithTheCache(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	s := commands.New(commands.Config{Store: mem, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	room := newGroup(t, s)
	send := func(user int64, text string) commands.Sent {
		t.Helper()
		sent, err := s.SendMessage(ctx, commands.Actor{UserID: user}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: text}})
		if err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		return sent
	}
	send(1, "a")
	before, later, ok := commands.CachedMembers(s, room)
	if !ok || len(before) != 1 {
		t.Fatalf("cached members %v, %v; want the creator alone", before, ok)
	}
	send(1, "b")
	if _, err := s.JoinChatroom(ctx, commands.Actor{UserID: 2}, room, ""); err != nil {
		t.Fatal(err)
	}
	if got := send(1, "c").Message.Receivers; len(got) != 1 || got[0] != 2 {
		t.Errorf("receivers after the join = %v; want [2]", got)
	}
	send(2, "d")
	if got := later(); len(got) != 1 || got[0] != 1 {
		t.Errorf("a state cached before the join now has members %v; want [1]: a cached state changed", got)
	}
	if now, _, _ := commands.CachedMembers(s, room); len(now) != 2 {
		t.Errorf("cached members %v; want 1 and 2", now)
	}
}
