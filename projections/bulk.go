package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// ApplyBulk applies a batch of events to the tables of schema inside tx, the
// way Apply does, but loads messages and inbox rows with COPY: the path of
// rebuilds, where the tables are new and a batch holds thousands of events.
// Messages go first, then every other event in log order (so a read receipt
// finds its message), then the rooms' last activity.
func (c *Chat) ApplyBulk(ctx context.Context, tx pgx.Tx, schema string, events []eventstore.RecordedEvent) error {
	var msgRows, inboxRows [][]any
	var others []eventstore.RecordedEvent
	activity := map[int64]struct {
		at time.Time
		id int64
	}{}
	var maxMessage int64
	for _, re := range events {
		if re.Type != domain.TypeMessageSent {
			others = append(others, re)
			continue
		}
		ev, md, ok, err := Decode(c.registry, re)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		m := ev.(domain.MessageSent)
		receivers := m.Receivers
		if receivers == nil {
			receivers = []int64{}
		}
		msgRows = append(msgRows, []any{m.MessageID, m.ConversationID, m.SenderID, receivers, []int64{}, m.Text,
			attachmentJSON(m.Picture), attachmentJSON(m.Video), md.Time, md.Time, int64(re.Position.Commit), int64(re.Position.Prepare)})
		inboxRows = append(inboxRows, []any{m.SenderID, m.MessageID, m.ConversationID, false})
		for _, r := range receivers {
			if r != m.SenderID {
				inboxRows = append(inboxRows, []any{r, m.MessageID, m.ConversationID, true})
			}
		}
		a := activity[m.ConversationID]
		if md.Time.After(a.at) {
			a.at = md.Time
		}
		a.id = max(a.id, m.MessageID)
		activity[m.ConversationID] = a
		maxMessage = max(maxMessage, m.MessageID)
		if m.Picture != nil || m.Video != nil {
			others = append(others, attachmentsOnly(re)) // the attachments rows, in order
		}
	}
	if len(msgRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{schema, "messages"},
			[]string{"id", "conversation_id", "sender_id", "receivers", "read_by", "text", "picture", "video", "created_at", "updated_at", "commit_pos", "prepare_pos"},
			pgx.CopyFromRows(msgRows)); err != nil {
			return fmt.Errorf("copy messages: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{schema, "inbox"},
			[]string{"user_id", "message_id", "conversation_id", "unread"}, pgx.CopyFromRows(inboxRows)); err != nil {
			return fmt.Errorf("copy inbox: %w", err)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('search_path', $1, true)`, pgx.Identifier{schema}.Sanitize()+", public")
	if err := c.Apply(b, others); err != nil {
		return err
	}
	if len(activity) > 0 {
		ids := make([]int64, 0, len(activity))
		ats := make([]time.Time, 0, len(activity))
		last := make([]int64, 0, len(activity))
		for id, a := range activity {
			ids, ats, last = append(ids, id), append(ats, a.at), append(last, a.id)
		}
		b.Queue(`UPDATE conversations c SET last_activity_at = greatest(c.last_activity_at, v.at),
				last_message_id = greatest(c.last_message_id, v.id)
			FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[]) AS v(cid, at, id) WHERE c.id = v.cid`, ids, ats, last)
	}
	if maxMessage > 0 {
		b.Queue(`SELECT setval('ids.messages', $1) FROM ids.messages WHERE last_value < $1`, maxMessage)
	}
	return tx.SendBatch(ctx, b).Close()
}

// attachmentsOnly marks a message event whose attachment rows the ordered
// pass must still write (its message row was copied already).
func attachmentsOnly(re eventstore.RecordedEvent) eventstore.RecordedEvent {
	re.Type = attachmentsType
	return re
}

// attachmentsType is an internal pseudo-type, never stored in the log.
const attachmentsType = "internal.message_attachments"
