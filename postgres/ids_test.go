package postgres_test

import (
	"slices"
	"testing"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/postgres"
)

func TestIDs(t *testing.T) {
	t.Parallel()
	ids := postgres.NewIDs(newDB(t))
	ctx := t.Context()
	for _, kind := range []commands.IDKind{commands.UserIDs, commands.ConversationIDs, commands.MembershipIDs, commands.MessageIDs} {
		// Each kind counts from 1 on a fresh database, as the API promises.
		if id, err := ids.Next(ctx, kind); err != nil || id != 1 {
			t.Fatalf("first %s id = %d, %v; want 1", kind, id, err)
		}
	}
	got, err := ids.NextN(ctx, commands.MessageIDs, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("NextN(messages, 3) = %v; want %v", got, want)
	}
	if id, err := ids.Next(ctx, commands.MessageIDs); err != nil || id != 5 {
		t.Fatalf("next message id = %d, %v; want 5", id, err)
	}
	if id, err := ids.Next(ctx, commands.UserIDs); err != nil || id != 2 {
		t.Fatalf("second user id = %d, %v; want 2 (kinds count apart)", id, err)
	}
	if _, err := ids.Next(ctx, commands.IDKind("nonsense")); err == nil {
		t.Fatal("Next of an unknown kind succeeded; want an error")
	}
}
