package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// ApplyBulk applies a batch of events to the tables of schema inside tx, the
// way Apply does, but loads messages and inbox rows with COPY: the path of
// rebuilds, where the tables are new and a batch holds thousands of events.
// Messages go first, then every other event in log order (so a read receipt
// finds its message), then the rooms' last activity.
func (c *Chat) ApplyBulk(ctx context.Context, tx pgx.Tx, schema migrations.Schema, events []eventstore.RecordedEvent) error {
	bb, err := c.prepareBulk(events)
	if err != nil {
		return err
	}
	if err := bb.copyInbox(ctx, tx, schema); err != nil {
		return err
	}
	return bb.load(ctx, tx, schema)
}

// bulkBatch is a batch decoded and turned into rows, ready to load.
type bulkBatch struct {
	events    []eventstore.RecordedEvent
	msgRows   [][]any
	inboxRows [][]any
	others    []eventstore.RecordedEvent // applied in order; their MessageSent events only add attachments
	activity  map[int64]struct {
		at time.Time
		id int64
	}
	maxMessage int64
	chat       *Chat
	// Read receipts, applied together: they only clear inbox flags and
	// extend read_by, which commute.
	readReader, readMessage, readRoom []int64
	// delivered: delivery receipts, and the deliveries reads imply
	// (rooms.go).
	delivered deliveries
}

// prepareBulk decodes a batch and builds its rows; it does no I/O, so a
// rebuild prepares the next batch while the database loads this one.
func (c *Chat) prepareBulk(events []eventstore.RecordedEvent) (*bulkBatch, error) {
	bb := &bulkBatch{events: events, chat: c, activity: map[int64]struct {
		at time.Time
		id int64
	}{}}
	for _, re := range events {
		if ok, err := bb.collectDelivery(re); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		if re.Type == domain.TypeMessagesRead {
			ev, _, ok, err := Decode(c.registry, re)
			if err != nil {
				return nil, err
			}
			if ok {
				r := ev.(domain.MessagesRead)
				for _, id := range r.MessageIDs {
					bb.readReader = append(bb.readReader, r.ReaderID)
					bb.readMessage = append(bb.readMessage, id)
					bb.readRoom = append(bb.readRoom, r.ConversationID)
				}
				bb.delivered.add(r.ReaderID, r.ConversationID, r.MessageIDs)
			}
			continue
		}
		if re.Type != domain.TypeMessageSent {
			bb.others = append(bb.others, re)
			continue
		}
		ev, md, ok, err := Decode(c.registry, re)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		m := ev.(domain.MessageSent)
		receivers := m.Receivers
		if receivers == nil {
			receivers = []int64{}
		}
		bb.msgRows = append(bb.msgRows, []any{m.MessageID, m.ConversationID, m.SenderID, receivers, []int64{}, m.Text,
			attachmentJSON(m.Picture), attachmentJSON(m.Video), md.Time, md.Time, int64(re.Position.Commit), int64(re.Position.Prepare), replyTo(m.ReplyTo)})
		c, p := int64(re.Position.Commit), int64(re.Position.Prepare)
		bb.inboxRows = append(bb.inboxRows, []any{m.SenderID, m.MessageID, m.ConversationID, false, c, p})
		for _, r := range receivers {
			if r != m.SenderID {
				bb.inboxRows = append(bb.inboxRows, []any{r, m.MessageID, m.ConversationID, true, c, p})
			}
		}
		a := bb.activity[m.ConversationID]
		if md.Time.After(a.at) {
			a.at = md.Time
		}
		a.id = max(a.id, m.MessageID)
		bb.activity[m.ConversationID] = a
		bb.maxMessage = max(bb.maxMessage, m.MessageID)
		if m.Picture != nil || m.Video != nil {
			// Its attachment rows are written in order with the rest:
			// loadOrdered applies others with the message rows copied.
			bb.others = append(bb.others, re)
		}
	}
	return bb, nil
}

// copier is what COPY runs on: a transaction, or a pool (its own transaction).
type copier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// copyInbox loads the batch's inbox rows. A rebuild runs it on a connection
// of its own, beside load.
func (bb *bulkBatch) copyInbox(ctx context.Context, db copier, schema migrations.Schema) error {
	if len(bb.inboxRows) == 0 {
		return nil
	}
	if _, err := db.CopyFrom(ctx, schema.Identifier("inbox"),
		[]string{"user_id", "message_id", "conversation_id", "unread", "commit_pos", "prepare_pos"}, pgx.CopyFromRows(bb.inboxRows)); err != nil {
		return fmt.Errorf("copy inbox: %w", err)
	}
	return nil
}

// load writes everything but the inbox rows, which must be visible before
// the ordered statements run (read receipts update them).
func (bb *bulkBatch) load(ctx context.Context, tx pgx.Tx, schema migrations.Schema) error {
	if err := bb.copyMessages(ctx, tx, schema); err != nil {
		return err
	}
	return bb.loadOrdered(ctx, tx, schema)
}

// copyMessages loads the batch's message rows.
func (bb *bulkBatch) copyMessages(ctx context.Context, db copier, schema migrations.Schema) error {
	if len(bb.msgRows) == 0 {
		return nil
	}
	if _, err := db.CopyFrom(ctx, schema.Identifier("messages"),
		[]string{"id", "conversation_id", "sender_id", "receivers", "read_by", "text", "picture", "video", "created_at", "updated_at", "commit_pos", "prepare_pos", "reply_to"},
		pgx.CopyFromRows(bb.msgRows)); err != nil {
		return fmt.Errorf("copy messages: %w", err)
	}
	return nil
}

func (bb *bulkBatch) loadOrdered(ctx context.Context, tx pgx.Tx, schema migrations.Schema) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('search_path', $1, true)`, schema.SearchPath())
	if err := bb.chat.apply(b, bb.others, true); err != nil {
		return err
	}
	if len(bb.readReader) > 0 {
		b.Queue(`WITH r AS (
				SELECT DISTINCT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS r(reader, message_id, room)),
			newly AS (
				UPDATE inbox i SET unread = false FROM r
				 WHERE i.user_id = r.reader AND i.message_id = r.message_id AND i.conversation_id = r.room AND i.unread
				RETURNING i.user_id, i.message_id),
			agg AS (SELECT message_id, array_agg(user_id) AS readers FROM newly GROUP BY message_id)
			UPDATE messages m SET read_by = (SELECT array_agg(x ORDER BY x) FROM unnest(m.read_by || agg.readers) AS x)
			  FROM agg WHERE m.id = agg.message_id`, bb.readReader, bb.readMessage, bb.readRoom)
	}
	bb.delivered.queue(b)
	if len(bb.activity) > 0 {
		ids := make([]int64, 0, len(bb.activity))
		ats := make([]time.Time, 0, len(bb.activity))
		last := make([]int64, 0, len(bb.activity))
		for id, a := range bb.activity {
			ids, ats, last = append(ids, id), append(ats, a.at), append(last, a.id)
		}
		b.Queue(`UPDATE conversations c SET last_activity_at = greatest(c.last_activity_at, v.at),
				last_message_id = greatest(c.last_message_id, v.id)
			FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[]) AS v(cid, at, id) WHERE c.id = v.cid`, ids, ats, last)
	}
	if bb.maxMessage > 0 {
		b.Queue(`SELECT setval('ids.messages', $1) FROM ids.messages WHERE last_value < $1`, bb.maxMessage)
	}
	return tx.SendBatch(ctx, b).Close()
}
