package projections

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// ApplyInto applies a batch of events to the tables of schema inside tx,
// statement by statement as Apply does: the path of the few events a
// rebuild or a verification applies after loading the log (buildInto),
// whose counters are set by then.
func (c *Chat) ApplyInto(ctx context.Context, tx pgx.Tx, schema migrations.Schema, events []eventstore.RecordedEvent) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('search_path', $1, true)`, schema.SearchPath())
	if err := c.apply(b, events, false); err != nil {
		return err
	}
	return tx.SendBatch(ctx, b).Close()
}

// bulkBatch is a batch decoded and turned into rows, ready to load.
type bulkBatch struct {
	events   []eventstore.RecordedEvent
	msgs     copyRows                   // messageColumns
	others   []eventstore.RecordedEvent // applied in order; their MessageSent events only add attachments
	activity map[int64]struct {
		at time.Time
		id int64
	}
	maxMessage int64
	chat       *Chat
	// Read receipts, applied together: they only extend read_by, which
	// commutes (the read counts are set once the log is loaded:
	// count_unread). readCommit and readPrepare are the receipts' log
	// positions: a receipt reaches only messages sent before it, as when
	// events are applied one by one.
	readReader, readMessage, readRoom []int64
	readCommit, readPrepare           []int64
	// delivered: delivery receipts, and the deliveries reads imply
	// (rooms.go).
	delivered deliveries
	// rooms: the rooms the batch creates, written before its other events
	// (createdSQL).
	rooms createdRooms
}

// prepareBulk decodes a batch and builds its rows; it does no I/O, so a
// rebuild prepares the next batch while the database loads this one.
func (c *Chat) prepareBulk(events []eventstore.RecordedEvent) (*bulkBatch, error) {
	bb := &bulkBatch{events: events, chat: c, activity: map[int64]struct {
		at time.Time
		id int64
	}{}}
	dec := c.decodeAll(events)
	for i, re := range events {
		if ok, err := bb.collectDelivery(re, dec[i]); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		if re.Type == domain.TypeMessagesRead {
			ev, ok, err := dec[i].ev, dec[i].ok, dec[i].err
			if err != nil {
				return nil, err
			}
			if ok {
				r := ev.(domain.MessagesRead)
				for _, id := range r.MessageIDs {
					bb.readReader = append(bb.readReader, r.ReaderID)
					bb.readMessage = append(bb.readMessage, id)
					bb.readRoom = append(bb.readRoom, r.ConversationID)
					bb.readCommit = append(bb.readCommit, int64(re.Position.Commit))
					bb.readPrepare = append(bb.readPrepare, int64(re.Position.Prepare))
				}
				bb.delivered.addAt(r.ReaderID, r.ConversationID, r.MessageIDs, re.Position)
			}
			continue
		}
		if re.Type == domain.TypeConversationCreated {
			ev, md, ok, err := dec[i].ev, dec[i].md, dec[i].ok, dec[i].err
			if err != nil {
				return nil, err
			}
			if ok {
				bb.rooms.add(ev.(domain.ConversationCreated), md.Time, re.Position)
			}
			continue
		}
		if re.Type != domain.TypeMessageSent {
			bb.others = append(bb.others, re)
			continue
		}
		ev, md, ok, err := dec[i].ev, dec[i].md, dec[i].ok, dec[i].err
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		m := ev.(domain.MessageSent)
		c, p := int64(re.Position.Commit), int64(re.Position.Prepare)
		bb.msgs.row(len(messageColumns))
		bb.msgs.int8(m.MessageID)
		bb.msgs.int8(m.ConversationID)
		bb.msgs.int8(m.SenderID)
		bb.msgs.int8Array(m.Receivers)
		bb.msgs.text(m.Text)
		bb.msgs.jsonb(attachmentJSON(m.Picture))
		bb.msgs.jsonb(attachmentJSON(m.Video))
		bb.msgs.timestamptz(md.Time)
		bb.msgs.timestamptz(md.Time)
		bb.msgs.int8(c)
		bb.msgs.int8(p)
		bb.msgs.int8OrNull(replyTo(m.ReplyTo))
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

// decoded is an event as Decode returns it.
type decoded struct {
	ev  domain.Event
	md  domain.Metadata
	ok  bool
	err error
}

// decodeWorkers is how many goroutines decode a bulk batch: decoding is most
// of a rebuild's own work.
const decodeWorkers = 2

// decodeAll decodes the messages and receipts of events, the events whose
// rows prepareBulk builds, in parallel; the others it leaves zero (apply
// decodes them).
func (c *Chat) decodeAll(events []eventstore.RecordedEvent) []decoded {
	dec := make([]decoded, len(events))
	var wg sync.WaitGroup
	per := (len(events) + decodeWorkers - 1) / decodeWorkers
	for lo := 0; lo < len(events); lo += per {
		hi := min(lo+per, len(events))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				switch events[i].Type {
				case domain.TypeMessageSent, domain.TypeMessagesRead, domain.TypeMessagesDelivered, domain.TypeConversationCreated:
					d := &dec[i]
					d.ev, d.md, d.ok, d.err = Decode(c.registry, events[i])
				}
			}
		})
	}
	wg.Wait()
	return dec
}

// messageColumns are the columns of the rows bulkBatch.msgs holds, in order.
var messageColumns = []string{"id", "conversation_id", "sender_id", "receivers", "text", "picture", "video",
	"created_at", "updated_at", "commit_pos", "prepare_pos", "reply_to"}

// copyMessages loads the batch's message rows.
func (bb *bulkBatch) copyMessages(ctx context.Context, tx pgx.Tx, schema migrations.Schema) error {
	if err := bb.msgs.copyTo(ctx, tx, schema.Identifier("messages"), messageColumns); err != nil {
		return fmt.Errorf("copy messages: %w", err)
	}
	return nil
}

func (bb *bulkBatch) loadOrdered(ctx context.Context, tx pgx.Tx, schema migrations.Schema) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('search_path', $1, true)`, schema.SearchPath())
	// A room's creation comes before anything else of it in the log.
	bb.rooms.queue(b)
	if err := bb.chat.apply(b, bb.others, true); err != nil {
		return err
	}
	if len(bb.readReader) > 0 {
		b.Queue(readDeferredSQL, bb.readReader, bb.readMessage, bb.readRoom, bb.readCommit, bb.readPrepare)
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

// readDeferredSQL is the read receipts' statement of a bulk batch: it adds
// each reader to read_by where markReadSQL would, that is where the message
// was sent to the reader (who is not its sender) in the receipt's room
// before the receipt in the log, and the reader is not in read_by yet.
// count_unread then counts each reader's reads from read_by.
const readDeferredSQL = `WITH r AS (
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS r(reader, message_id, room, c, p)),
	agg AS (
		SELECT m.id, array_agg(DISTINCT r.reader) AS readers
		  FROM r JOIN messages m ON m.id = r.message_id AND m.conversation_id = r.room
		 WHERE r.reader <> m.sender_id AND r.reader = ANY(m.receivers) AND NOT r.reader = ANY(m.read_by)
		   AND (m.commit_pos, m.prepare_pos) < (r.c, r.p)
		 GROUP BY m.id)
	UPDATE messages m SET read_by = (SELECT array_agg(x ORDER BY x) FROM unnest(m.read_by || agg.readers) AS x)
	  FROM agg WHERE m.id = agg.id`

// createdRooms are the rooms a bulk batch creates, as arrays for createdSQL:
// three statements for the batch instead of several per room, which for a
// log of many small rooms was most of a rebuild. Counters are left to
// count_unread, as for the rest of the bulk path.
type createdRooms struct {
	id                               []int64
	typ                              []string
	name, description                []*string
	by                               []int64
	at                               []time.Time
	memberRoom, memberUser, memberID []int64
	memberAt                         []time.Time
	admin                            []bool
	pastUser, pastRoom               []int64
	pastCommit, pastPrepare          []int64
	maxRoom, maxMembership           int64
}

// add adds the rows the live path writes for e (Chat.apply, applyRooms):
// the room, its members (a user named twice once, as ON CONFLICT DO NOTHING
// keeps the first), the creator their admin, and past_members.
func (r *createdRooms) add(e domain.ConversationCreated, at time.Time, pos eventstore.Position) {
	r.id = append(r.id, e.ConversationID)
	r.typ = append(r.typ, string(e.Type))
	r.name, r.description = append(r.name, e.Name), append(r.description, e.Description)
	r.by, r.at = append(r.by, e.CreatedBy), append(r.at, at)
	r.maxRoom = max(r.maxRoom, e.ConversationID)
	seen := make(map[int64]bool, len(e.Members))
	for _, m := range e.Members {
		r.maxMembership = max(r.maxMembership, m.MembershipID)
		if seen[m.UserID] {
			continue
		}
		seen[m.UserID] = true
		r.memberRoom, r.memberUser, r.memberID = append(r.memberRoom, e.ConversationID), append(r.memberUser, m.UserID), append(r.memberID, m.MembershipID)
		r.memberAt, r.admin = append(r.memberAt, at), append(r.admin, m.UserID == e.CreatedBy)
		r.pastUser, r.pastRoom = append(r.pastUser, m.UserID), append(r.pastRoom, e.ConversationID)
		r.pastCommit, r.pastPrepare = append(r.pastCommit, int64(pos.Commit)), append(r.pastPrepare, int64(pos.Prepare))
	}
}

func (r *createdRooms) queue(b *pgx.Batch) {
	if len(r.id) == 0 {
		return
	}
	b.Queue(`INSERT INTO conversations (id, type, name, description, created_by, created_at, updated_at, last_activity_at,
			name_by, description_by)
		SELECT id, typ, name, description, by, at, at, at,
			CASE WHEN name IS NOT NULL THEN by END, CASE WHEN description IS NOT NULL THEN by END
		  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])
		    AS t(id, typ, name, description, by, at)
		ON CONFLICT DO NOTHING`, r.id, r.typ, r.name, r.description, r.by, r.at)
	b.Queue(`INSERT INTO members (conversation_id, user_id, membership_id, joined_at, admin)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::boolean[])
		ON CONFLICT DO NOTHING`, r.memberRoom, r.memberUser, r.memberID, r.memberAt, r.admin)
	b.Queue(`INSERT INTO past_members (user_id, conversation_id, joined_commit, joined_prepare)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])
		ON CONFLICT DO NOTHING`, r.pastUser, r.pastRoom, r.pastCommit, r.pastPrepare)
	b.Queue(`SELECT setval('ids.conversations', $1) FROM ids.conversations WHERE last_value < $1`, r.maxRoom)
	if r.maxMembership > 0 {
		b.Queue(`SELECT setval('ids.memberships', $1) FROM ids.memberships WHERE last_value < $1`, r.maxMembership)
	}
}
