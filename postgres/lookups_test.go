package postgres_test

import (
	"slices"
	"testing"

	"github.com/evchat/evchat/postgres"
)

func TestLookups(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	ctx := t.Context()
	// Read-model rows as the projection writes them: users 1 and 2, room 5
	// with messages 10 (from 1 to 2, unread), 11 (from 1 to 2, read) and
	// 12 (from 2 to 1); message 20 is in another room.
	exec(t, pool, `INSERT INTO users (id, username, username_key, created_at)
		VALUES (1, 'Alice', 'alice', now()), (2, 'bob', 'bob', now())`)
	exec(t, pool, `INSERT INTO messages (id, conversation_id, sender_id, receivers, read_by, text, created_at, updated_at, commit_pos, prepare_pos)
		VALUES (10, 5, 1, '{2}', '{}', 'a', now(), now(), 1, 1), (11, 5, 1, '{2}', '{2}', 'b', now(), now(), 2, 2),
		       (12, 5, 2, '{1}', '{}', 'c', now(), now(), 3, 3), (20, 6, 1, '{2}', '{}', 'd', now(), now(), 4, 4)`)
	l := postgres.NewLookups(pool)

	for name, want := range map[string]bool{"alice": true, "bob": true, "carol": false} {
		if got, err := l.UsernameTaken(ctx, name); err != nil || got != want {
			t.Errorf("UsernameTaken(%q) = %v, %v; want %v", name, got, err, want)
		}
	}

	missing, err := l.MissingUsers(ctx, []int64{3, 1, 2, 7, 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{3, 7}; !slices.Equal(missing, want) {
		t.Errorf("MissingUsers = %v; want %v (each once, ascending)", missing, want)
	}
	if missing, err := l.MissingUsers(ctx, []int64{1, 2}); err != nil || len(missing) != 0 {
		t.Errorf("MissingUsers of existing users = %v, %v; want none", missing, err)
	}

	inRoom, unread, err := l.ReceiptTargets(ctx, 5, 2, []int64{10, 11, 12, 20, 99})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{10, 11, 12}; !slices.Equal(inRoom, want) {
		t.Errorf("ReceiptTargets in room = %v; want %v", inRoom, want)
	}
	if want := []int64{10}; !slices.Equal(unread, want) {
		t.Errorf("ReceiptTargets unread for user 2 = %v; want %v", unread, want)
	}
}
