package projections

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// The projection of delivery receipts and group administration
// (API.md section 8): the messages' delivered_to, the members' admin role,
// and a group's new name and description.

// applyRooms queues the statements of ev that this file owns, after those
// Chat.apply queued for it.
func (c *Chat) applyRooms(b *pgx.Batch, ev domain.Event, at time.Time) {
	switch e := ev.(type) {
	case domain.ConversationCreated:
		// The creator is the first admin (domain.Conversation.Apply).
		b.Queue(`UPDATE members SET admin = true WHERE conversation_id = $1 AND user_id = $2`, e.ConversationID, e.CreatedBy)
	case domain.AdminPromoted:
		b.Queue(`UPDATE members SET admin = true WHERE conversation_id = $1 AND user_id = $2`, e.ConversationID, e.UserID)
		b.Queue(`UPDATE conversations SET updated_at = greatest(updated_at, $2) WHERE id = $1`, e.ConversationID, at)
	case domain.ConversationUpdated:
		b.Queue(`UPDATE conversations SET
				name = CASE WHEN $2 THEN $3 ELSE name END,
				name_by = CASE WHEN $2 THEN $7 ELSE name_by END,
				description = CASE WHEN $4 THEN $5 ELSE description END,
				description_by = CASE WHEN $4 THEN $7 ELSE description_by END,
				updated_at = greatest(updated_at, $6)
			WHERE id = $1`, e.ConversationID, e.Name != nil, e.Name, e.Description != nil, e.Description, at, e.UpdatedBy)
	case domain.MessagesDelivered:
		var d deliveries
		d.add(e.ReceiverID, e.ConversationID, e.MessageIDs)
		d.queue(b)
	case domain.MessagesRead:
		// Read implies delivered.
		var d deliveries
		d.add(e.ReaderID, e.ConversationID, e.MessageIDs)
		d.queue(b)
	}
}

// deliveries are (receiver, message, room) triples to add to delivered_to,
// applied in one statement: adding commutes, so a rebuild applies a whole
// batch's together. A bulk batch gives each triple the log position of its
// receipt (addAt), so that a receipt never reaches a message sent after it
// in the same batch, as when events are applied one by one.
type deliveries struct{ receiver, message, room, commit, prepare []int64 }

func (d *deliveries) add(receiver, room int64, ids []int64) {
	for _, id := range ids {
		d.receiver, d.message, d.room = append(d.receiver, receiver), append(d.message, id), append(d.room, room)
	}
}

// addAt adds triples with the position of their receipt.
func (d *deliveries) addAt(receiver, room int64, ids []int64, at eventstore.Position) {
	d.add(receiver, room, ids)
	for range ids {
		d.commit, d.prepare = append(d.commit, int64(at.Commit)), append(d.prepare, int64(at.Prepare))
	}
}

// deliveredSQL adds each receiver to the delivered_to of their message,
// when it is a message of that room they received and is not there yet;
// delivered_to stays ascending and distinct. %s is an added condition on a
// receipt d and its message m.
//
// Each receipt looks its message up by key (the LATERAL subquery, which
// LIMIT keeps from being merged into a join, and from taking the
// conditions on the message, which would let it walk the room's messages
// by position instead): as a join, a plan made while the table was small
// read all of it for every batch, and a session keeps a prepared
// statement's generic plan while the table grows.
const deliveredSQL = `WITH d AS (
		SELECT DISTINCT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]%s) AS d(receiver, message_id, room%s)),
	agg AS (
		SELECT d.message_id, array_agg(d.receiver) AS rs
		  FROM d CROSS JOIN LATERAL (
			SELECT m.conversation_id, m.receivers, m.delivered_to, m.commit_pos, m.prepare_pos
			  FROM messages m WHERE m.id = d.message_id LIMIT 1) AS m
		 WHERE m.conversation_id = d.room AND d.receiver = ANY(m.receivers) AND NOT d.receiver = ANY(m.delivered_to)%s
		 GROUP BY d.message_id)
	UPDATE messages m SET delivered_to = (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(m.delivered_to || agg.rs) AS x)
	  FROM agg WHERE m.id = agg.message_id`

var (
	deliveredNow = fmt.Sprintf(deliveredSQL, "", "", "")
	// deliveredBefore: only to a message sent before the receipt.
	deliveredBefore = fmt.Sprintf(deliveredSQL, ", $4::bigint[], $5::bigint[]", ", c, p",
		"\n\t\t   AND (m.commit_pos, m.prepare_pos) < (d.c, d.p)")
)

func (d *deliveries) queue(b *pgx.Batch) {
	switch {
	case len(d.message) == 0:
	case len(d.commit) == len(d.message):
		b.Queue(deliveredBefore, d.receiver, d.message, d.room, d.commit, d.prepare)
	default:
		b.Queue(deliveredNow, d.receiver, d.message, d.room)
	}
}

// collectDelivery takes a delivery receipt out of a bulk batch's ordered
// events into its deliveries, decoded as d; it reports whether re was one.
func (bb *bulkBatch) collectDelivery(re eventstore.RecordedEvent, d decoded) (bool, error) {
	if re.Type != domain.TypeMessagesDelivered {
		return false, nil
	}
	ev, ok, err := d.ev, d.ok, d.err
	if err != nil || !ok {
		return true, err
	}
	e := ev.(domain.MessagesDelivered)
	bb.delivered.addAt(e.ReceiverID, e.ConversationID, e.MessageIDs, re.Position)
	return true, nil
}
