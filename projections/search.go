package projections

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/readmodel"
)

// Search projects the full-text search index (migrations/search): a row
// per message with its current text, replaced by an edit and cleared by a
// deletion. It has its own schema and checkpoint, so it is backfilled,
// paused and rebuilt without the chat projection.
//
// Every statement is idempotent: a send inserts only a missing row, and an
// edit or a deletion changes a row only when it is later in the log than
// the last event applied to it.
type Search struct {
	registry *domain.Registry
	// The statements, on the tables of the schema written to: they are
	// qualified, because a batch's statements are prepared under the
	// connection's search path, which finds the chat read model's.
	insert, edit, del, forget string
}

var _ Projection = (*Search)(nil)

// NewSearch returns the search projection.
func NewSearch(r *domain.Registry) *Search { return newSearchIn(r, migrations.Search) }

// newSearchIn returns the search projection writing to schema.
func newSearchIn(r *domain.Registry, schema migrations.Schema) *Search {
	t := schema.Qualified("messages")
	return &Search{registry: r, insert: fmt.Sprintf(searchInsert, t), edit: fmt.Sprintf(searchEdit, t), del: fmt.Sprintf(searchDelete, t),
		forget: fmt.Sprintf(searchForget, t)}
}

// Name implements Projection.
func (*Search) Name() string { return SearchName }

// searchInsert adds the messages of a batch; a row already there (a replay)
// is left alone, tombstone or not.
const searchInsert = `INSERT INTO %s (message_id, conversation_id, sender_id, text, commit_pos, prepare_pos, changed_commit, changed_prepare)
	SELECT v.id, v.conv, v.sender, v.text, v.c, v.p, v.c, v.p
	  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[]) AS v(id, conv, sender, text, c, p)
	ON CONFLICT (message_id) DO NOTHING`

// searchEdit replaces the text of live messages with the batch's last edit
// of each, unless the row has seen a later event.
const searchEdit = `UPDATE %s s SET text = v.text, changed_commit = v.c, changed_prepare = v.p
	  FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS v(id, text, c, p)
	 WHERE s.message_id = v.id AND s.text IS NOT NULL AND (s.changed_commit, s.changed_prepare) < (v.c, v.p)`

// searchDelete makes rows tombstones: no text, so no word matches them.
const searchDelete = `UPDATE %s s SET text = NULL, changed_commit = v.c, changed_prepare = v.p
	  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, c, p)
	 WHERE s.message_id = v.id AND (s.changed_commit, s.changed_prepare) < (v.c, v.p)`

// searchForget makes every message of forgotten users a tombstone: the
// placeholder their sealed texts read as must not match either.
const searchForget = `UPDATE %s SET text = NULL WHERE sender_id = ANY($1::bigint[]) AND text IS NOT NULL`

// Apply implements Projection: at most four statements a batch, however
// long, which is what makes a backfill of a long log fast.
func (s *Search) Apply(b *pgx.Batch, events []eventstore.RecordedEvent) error {
	var ins struct {
		id, conv, sender, c, p []int64
		text                   []string
	}
	type change struct {
		text string
		c, p int64
	}
	edits := map[int64]change{}
	deletes := map[int64]change{}
	var forgotten []int64
	for _, re := range events {
		switch re.Type {
		case domain.TypeMessageSent, domain.TypeMessageEdited, domain.TypeMessageDeleted, domain.TypeUserForgotten:
		default:
			continue // not decoded: most of a log is other events
		}
		ev, _, ok, err := Decode(s.registry, re)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		c, p := int64(re.Position.Commit), int64(re.Position.Prepare)
		switch e := ev.(type) {
		case domain.MessageSent:
			ins.id, ins.conv, ins.sender = append(ins.id, e.MessageID), append(ins.conv, e.ConversationID), append(ins.sender, e.SenderID)
			ins.text, ins.c, ins.p = append(ins.text, readmodel.IndexText(e.Text)), append(ins.c, c), append(ins.p, p)
		case domain.MessageEdited:
			edits[e.MessageID] = change{text: readmodel.IndexText(e.Text), c: c, p: p} // the last edit wins
		case domain.MessageDeleted:
			deletes[e.MessageID] = change{c: c, p: p}
		case domain.UserForgotten:
			forgotten = append(forgotten, e.UserID)
		}
	}
	if len(ins.id) > 0 {
		b.Queue(s.insert, ins.id, ins.conv, ins.sender, ins.text, ins.c, ins.p)
	}
	// Edits before deletions: a message edited and then deleted within
	// the batch ends deleted (an edit never follows a deletion).
	if len(edits) > 0 {
		var id, c, p []int64
		var text []string
		for k, v := range edits {
			id, text, c, p = append(id, k), append(text, v.text), append(c, v.c), append(p, v.p)
		}
		b.Queue(s.edit, id, text, c, p)
	}
	if len(deletes) > 0 {
		var id, c, p []int64
		for k, v := range deletes {
			id, c, p = append(id, k), append(c, v.c), append(p, v.p)
		}
		b.Queue(s.del, id, c, p)
	}
	// Last: a user's sends in this batch are forgotten with the rest.
	if len(forgotten) > 0 {
		b.Queue(s.forget, forgotten)
	}
	return nil
}
