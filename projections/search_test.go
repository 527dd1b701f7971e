package projections_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/projections"
)

// TestSearchApplyIdempotent: the search projection converges when batches
// are applied again, in any overlap: a replayed send does not bring a
// deleted message back, and a replayed older edit does not undo a newer one.
func TestSearchApplyIdempotent(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	ctx := context.Background()
	l.room(t, 1)
	l.append(t, domain.ConversationStream(1), domain.MessageSent{ConversationID: 1, MessageID: 1, SenderID: 1, Text: "first draft"})
	l.append(t, domain.ConversationStream(1), domain.MessageSent{ConversationID: 1, MessageID: 2, SenderID: 1, Text: "doomed"})
	l.append(t, "edits", domain.MessageEdited{ConversationID: 1, MessageID: 1, EditorID: 1, Text: "second draft"})
	l.append(t, "edits", domain.MessageEdited{ConversationID: 1, MessageID: 1, EditorID: 1, Text: "final <draft> & co"})
	l.append(t, "edits", domain.MessageDeleted{ConversationID: 1, MessageID: 2, DeletedBy: 1})
	events, err := l.store.ReadAll(ctx, eventstore.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	search := projections.NewSearch(domain.NewRegistry())
	apply := func(evs []eventstore.RecordedEvent) {
		t.Helper()
		b := &pgx.Batch{}
		if err := search.Apply(b, evs); err != nil {
			t.Fatal(err)
		}
		if err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
			t.Fatal(err)
		}
	}
	state := func() map[int64]*string {
		t.Helper()
		rows, err := l.pool.Query(ctx, `SELECT message_id, text FROM search.messages`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]*string{}
		for rows.Next() {
			var id int64
			var text *string
			if err := rows.Scan(&id, &text); err != nil {
				t.Fatal(err)
			}
			out[id] = text
		}
		return out
	}
	check := func(what string) {
		t.Helper()
		got := state()
		if len(got) != 2 || got[1] == nil || *got[1] != "final \uE002draft\uE003 \uE004 co" || got[2] != nil {
			t.Fatalf("%s: index = %v; want message 1's last text (in the index's form) and message 2 a tombstone", what, got)
		}
	}
	for _, e := range events { // one event a batch
		apply([]eventstore.RecordedEvent{e})
	}
	check("applied one by one")
	apply(events) // everything again, in one batch
	check("replayed whole")
	for i := range events { // every suffix again
		apply(events[i:])
	}
	check("replayed from every position")
	var n int
	if err := l.pool.QueryRow(ctx, `SELECT count(*) FROM search.messages WHERE tsv @@ websearch_to_tsquery('simple', 'draft')`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("messages matching draft = %d (%v); want 1", n, err)
	}
}
