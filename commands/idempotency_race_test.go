package commands_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// keysHook gives one process's view of shared keys its own behaviour.
type keysHook struct {
	*memKeys
	beforeRelease func()
	failComplete  bool
}

func (k keysHook) Complete(ctx context.Context, user int64, key string, s commands.KeyedSend) error {
	if k.failComplete {
		return errors.New("the process died")
	}
	return k.memKeys.Complete(ctx, user, key, s)
}

func (k keysHook) Release(ctx context.Context, user int64, key string, owner uuid.UUID) error {
	if k.beforeRelease != nil {
		k.beforeRelease()
	}
	return k.memKeys.Release(ctx, user, key, owner)
}

// A refused request must not free a key that another request took over
// and appended under: a later retry would then claim it afresh and append
// the event a second time.
func TestRefusedRequestDoesNotFreeAKeyAppendedUnder(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	keys := &memKeys{}
	ids := &ids{}
	room := newGroup(t, newKeyedService(mem, keys, ids))
	good := commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "hi"}, IdempotencyKey: "k"}
	empty := commands.SendMessage{ConversationID: room, IdempotencyKey: "k"} // refused: no text

	// a is refused and, about to release its claim, waits while b takes
	// the claim over, appends, and dies before completing it.
	aRefused, bDone := make(chan struct{}), make(chan struct{})
	a := newKeyedService(mem, keysHook{memKeys: keys, beforeRelease: func() { close(aRefused); <-bDone }}, ids)
	b := newKeyedService(mem, keysHook{memKeys: keys, failComplete: true}, ids)
	c := newKeyedService(mem, keys, ids)

	refused := make(chan error, 1)
	go func() { _, err := a.SendMessage(ctx, commands.Actor{UserID: 1}, empty); refused <- err }()
	<-aRefused
	if _, err := b.SendMessage(ctx, commands.Actor{UserID: 1}, good); err == nil {
		t.Fatal("b's send whose key could not be completed succeeded")
	}
	close(bDone)
	if err := <-refused; domain.KindOf(err) != domain.KindInvalid {
		t.Fatalf("a's empty send: %v; want refused as invalid", err)
	}
	sent, err := c.SendMessage(ctx, commands.Actor{UserID: 1}, good)
	if err != nil || !sent.Replayed {
		t.Fatalf("retry = %+v, %v; want a replay of b's message", sent, err)
	}
	for id, n := range keyedEvents(t, mem, room) {
		if n != 1 {
			t.Errorf("event %s stored %d times; want once", id, n)
		}
	}
}

// retryingStore answers an append whose last event id is in the stream
// already with that event's result, whatever the expected revision, as the
// PostgreSQL store does for a retried append.
type retryingStore struct {
	*gateStore
}

func (r retryingStore) Append(ctx context.Context, stream string, exp eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := r.gateStore.Append(ctx, stream, exp, events...)
	var wev *eventstore.WrongExpectedVersionError
	if errors.As(err, &wev) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.streams[stream] {
			if e.ID == events[len(events)-1].ID {
				return eventstore.AppendResult{Revision: e.Revision, Position: e.Position}, nil
			}
		}
	}
	return res, err
}

// An append answered with an earlier append's result (another process's,
// at another revision) must not leave this process's state cached at that
// revision: it would miss what happened in between.
func TestRetriedAppendResultDoesNotPoisonTheCache(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	keys := &memKeys{}
	ids := &ids{}
	var armed bool
	aClaimed, bSearched, aAppended := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var onceA, onceB sync.Once
	storeA := retryingStore{&gateStore{memStore: mem}}
	storeB := retryingStore{&gateStore{memStore: mem}}
	a := newKeyedService(storeA, claimHook{keys, func(bool) {
		if armed {
			close(aClaimed)
		}
	}}, ids)
	b := newKeyedService(storeB, keys, ids)
	u1, u2 := commands.Actor{UserID: 1}, commands.Actor{UserID: 2}
	room := newGroup(t, a)
	if _, err := b.JoinChatroom(ctx, u2, room, ""); err != nil { // b caches the room with u2 in it
		t.Fatal(err)
	}
	if _, err := a.LeaveChatroom(ctx, u2, room); err != nil { // u2 leaves through a: b's cache is stale
		t.Fatal(err)
	}
	armed = true
	storeA.beforeAppend = func() { <-bSearched }
	storeA.afterAppend = func() { onceA.Do(func() { close(aAppended) }) }
	storeB.afterBackward = func(n int) {
		if n > 1 { // the search of a pending claim, not the head
			onceB.Do(func() { close(bSearched) })
		}
	}
	storeB.beforeAppend = func() { <-aAppended }
	send := commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "once"}, IdempotencyKey: "k"}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := a.SendMessage(ctx, u1, send); err != nil {
			t.Error(err)
		}
	})
	<-aClaimed
	wg.Go(func() {
		if _, err := b.SendMessage(ctx, u1, send); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	storeA.beforeAppend, storeB.beforeAppend = nil, nil
	_, err := b.SendMessage(ctx, u2, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "I left"}})
	if domain.KindOf(err) != domain.KindForbidden {
		t.Errorf("a user who left sends through b: %v; want forbidden", err)
	}
}
