package commands_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// A claim whose creator died before creating the conversation is completed
// by the next creation of that pair, at the claimed id, and answered as new
// once; after that, as existing.
func TestDirectClaimWithoutConversationIsCompleted(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	svc := commands.New(commands.Config{Store: mem, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	data, _ := json.Marshal(domain.DirectChatClaimed{UserA: 1, UserB: 2, ConversationID: 77})
	md, _ := json.Marshal(domain.Metadata{Version: 1})
	if _, err := mem.Append(ctx, domain.DirectStream(2, 1), eventstore.NoStream(),
		eventstore.EventData{ID: uuid.New(), Type: domain.TypeDirectChatClaimed, Data: data, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	got, err := svc.CreateChatroom(ctx, commands.Actor{UserID: 2}, commands.CreateChatroom{Type: domain.Direct, Members: []int64{1}})
	if err != nil || got.Existing || got.Conversation.ID != 77 {
		t.Fatalf("create = %+v, %v; want conversation 77 created", got, err)
	}
	again, err := svc.CreateChatroom(ctx, commands.Actor{UserID: 1}, commands.CreateChatroom{Type: domain.Direct, Members: []int64{2}})
	if err != nil || !again.Existing || again.Conversation.ID != 77 {
		t.Fatalf("create again = %+v, %v; want existing conversation 77", again, err)
	}
	if _, err := svc.JoinChatroom(ctx, commands.Actor{UserID: 3}, 77, ""); err != domain.ErrNotParty {
		t.Errorf("a stranger joins: %v; want ErrNotParty", err)
	}
}
