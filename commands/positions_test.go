package commands_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// Sends combined into one append each answer their own message's log
// position, not the append's last one: a client resumes its WebSocket
// from it.
func TestCombinedSendAnswersEachMessagesPosition(t *testing.T) {
	ctx := context.Background()
	store := newHeldAppends(t)
	s := commands.New(commands.Config{Store: store, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry()})
	room := newGroup(t, s)
	store.hold.Store(2)

	a := sendAsync(ctx, s, room, "a")
	within(t, store.entered, "a's append to start")
	b := sendAsync(ctx, s, room, "b")
	queuedBehind(t, s, room, 1)
	c := sendAsync(ctx, s, room, "c")
	queuedBehind(t, s, room, 2)
	store.release <- struct{}{} // a lands; b and c go in one append
	within(t, store.entered, "b and c's append to start")
	store.release <- struct{}{}

	got := map[string]eventstore.Position{}
	for _, ch := range []<-chan sendOutcome{a, b, c} {
		r := within(t, ch, "an answer")
		if r.err != nil {
			t.Fatal(r.err)
		}
		got[r.sent.Message.Text] = r.sent.Position
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	var appends int
	for _, e := range store.streams[domain.ConversationStream(room)] {
		if e.Type != domain.TypeMessageSent {
			continue
		}
		appends++
		var m domain.MessageSent
		if err := json.Unmarshal(e.Data, &m); err != nil {
			t.Fatal(err)
		}
		if got[m.Text] != e.Position {
			t.Errorf("send %q answered position %s; its event is at %s", m.Text, got[m.Text], e.Position)
		}
	}
	if appends != 3 || got["b"] == got["c"] {
		t.Errorf("%d messages, b at %s and c at %s; want 3 messages at distinct positions", appends, got["b"], got["c"])
	}
}
