package postgres_test

import (
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/postgres"
)

func TestSendKeysLifecycle(t *testing.T) {
	t.Parallel()
	keys := postgres.NewSendKeys(newDB(t))
	ctx := t.Context()
	a, b := uuid.New(), uuid.New()

	k, claimed, err := keys.Claim(ctx, 7, "key-1", 3, a)
	if err != nil || !claimed {
		t.Fatalf("first claim = %v, %v; want claimed", claimed, err)
	}
	if k.ConversationID != 3 {
		t.Fatalf("claim's conversation = %d; want 3", k.ConversationID)
	}
	k, claimed, err = keys.Claim(ctx, 7, "key-1", 3, b)
	if err != nil || claimed {
		t.Fatalf("second claim = %v, %v; want the existing claim", claimed, err)
	}
	if k.Owner != a || k.MessageID != 0 || k.ConversationID != 3 {
		t.Fatalf("existing claim = %+v; want owner %s, no message, conversation 3", k, a)
	}
	// The same key of another user is another key.
	if _, claimed, err := keys.Claim(ctx, 8, "key-1", 3, b); err != nil || !claimed {
		t.Fatalf("other user's claim = %v, %v; want claimed", claimed, err)
	}

	// Only the owner passes a claim on, and only the owner releases it.
	if ok, err := keys.TakeOver(ctx, 7, "key-1", b, b); err != nil || ok {
		t.Fatalf("take over from a non-owner = %v, %v; want false", ok, err)
	}
	if ok, err := keys.TakeOver(ctx, 7, "key-1", a, b); err != nil || !ok {
		t.Fatalf("take over from the owner = %v, %v; want true", ok, err)
	}
	if err := keys.Release(ctx, 7, "key-1", a); err != nil {
		t.Fatal(err)
	}
	if k, claimed, _ := keys.Claim(ctx, 7, "key-1", 3, a); claimed || k.Owner != b {
		t.Fatalf("after a release by a former owner: claimed %v, owner %s; want the claim kept by %s", claimed, k.Owner, b)
	}

	pos := eventstore.Position{Commit: 42, Prepare: 41}
	if err := keys.Complete(ctx, 7, "key-1", commands.KeyedSend{ConversationID: 3, MessageID: 99, Position: pos}); err != nil {
		t.Fatal(err)
	}
	// A completed key keeps its message: not released, not overwritten.
	if err := keys.Release(ctx, 7, "key-1", b); err != nil {
		t.Fatal(err)
	}
	if err := keys.Complete(ctx, 7, "key-1", commands.KeyedSend{ConversationID: 3, MessageID: 100, Position: eventstore.Position{Commit: 50}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := keys.TakeOver(ctx, 7, "key-1", b, a); err != nil || ok {
		t.Fatalf("take over of a completed key = %v, %v; want false", ok, err)
	}
	k, claimed, err = keys.Claim(ctx, 7, "key-1", 3, a)
	if err != nil || claimed || k.MessageID != 99 || k.Position != pos {
		t.Fatalf("claim of a completed key = %+v, %v, %v; want message 99 at %s", k, claimed, err, pos)
	}

	// A released claim frees the key.
	if err := keys.Release(ctx, 8, "key-1", b); err != nil {
		t.Fatal(err)
	}
	if _, claimed, err := keys.Claim(ctx, 8, "key-1", 4, a); err != nil || !claimed {
		t.Fatalf("claim after release = %v, %v; want claimed", claimed, err)
	}

	// A key completed without a claim (recorded before claims existed) is
	// recorded all the same.
	if err := keys.Complete(ctx, 9, "old", commands.KeyedSend{ConversationID: 5, MessageID: 7, Position: pos}); err != nil {
		t.Fatal(err)
	}
	if k, claimed, _ := keys.Claim(ctx, 9, "old", 5, a); claimed || k.MessageID != 7 {
		t.Fatalf("claim of a key completed without a claim = %+v, %v; want message 7", k, claimed)
	}
}

func TestSendKeysTakeOverOfAClaimWithoutOwner(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	keys := postgres.NewSendKeys(pool)
	// A claim from before owners were recorded.
	exec(t, pool, `INSERT INTO public.send_keys (user_id, key, conversation_id) VALUES (1, 'k', 2)`)
	k, claimed, err := keys.Claim(t.Context(), 1, "k", 2, uuid.New())
	if err != nil || claimed || k.Owner != uuid.Nil {
		t.Fatalf("claim = %+v, %v, %v; want the existing claim without owner", k, claimed, err)
	}
	to := uuid.New()
	if ok, err := keys.TakeOver(t.Context(), 1, "k", uuid.Nil, to); err != nil || !ok {
		t.Fatalf("take over from no owner = %v, %v; want true", ok, err)
	}
	if k, _, _ := keys.Claim(t.Context(), 1, "k", 2, uuid.New()); k.Owner != to {
		t.Fatalf("owner after take over = %s; want %s", k.Owner, to)
	}
}

// Concurrent claims of one key: exactly one wins, and every other sees the
// winner's claim.
func TestSendKeysConcurrentClaims(t *testing.T) {
	t.Parallel()
	keys := postgres.NewSendKeys(newDB(t))
	const n = 16
	owners := make([]uuid.UUID, n)
	results := make([]commands.KeyedSend, n)
	won := make([]bool, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		owners[i] = uuid.New()
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			results[i], won[i], errs[i] = keys.Claim(t.Context(), 1, "race", 1, owners[i])
		}()
	}
	start.Done()
	wg.Wait()
	var winner uuid.UUID
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if won[i] {
			if winner != uuid.Nil {
				t.Fatal("two claims of one key both won")
			}
			winner = owners[i]
		}
	}
	if winner == uuid.Nil {
		t.Fatal("no claim won")
	}
	for i := range n {
		if !won[i] && results[i].Owner != winner {
			t.Fatalf("losing claim %d sees owner %s; want the winner %s", i, results[i].Owner, winner)
		}
	}
}
