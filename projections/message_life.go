package projections

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// The statements of a message's life after it is sent. Each is idempotent
// (a replayed batch changes nothing more), and an event of a message the
// read model does not hold changes nothing.
const (
	// messageEdited keeps the text as sent on the first edit. A deleted
	// message is not edited (the rules refuse it; this keeps the
	// tombstone's text empty all the same).
	messageEdited = `UPDATE messages SET original_text = coalesce(original_text, text), text = $2,
			edited_at = $3, updated_at = greatest(updated_at, $3)
		WHERE id = $1 AND deleted_at IS NULL`
	messageEditRow = `INSERT INTO message_edits (message_id, commit_pos, prepare_pos, editor_id, text, edited_at)
		SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM messages WHERE id = $1 AND deleted_at IS NULL)
		ON CONFLICT DO NOTHING`
	// messageDeleted leaves the tombstone, and drops its attachment rows
	// unless another message of the room names the same file: the media
	// check then refuses the file (404), and media gc collects it once no
	// room's message names it. The subquery sees the rows as they were
	// before the update, hence m2.id <> old.id.
	messageDeleted = `WITH old AS (
			SELECT id, conversation_id, picture->>'key' AS pk, video->>'key' AS vk FROM messages WHERE id = $1),
		upd AS (
			UPDATE messages m SET text = '', original_text = NULL, picture = NULL, video = NULL,
				deleted_at = coalesce(m.deleted_at, $2), updated_at = greatest(m.updated_at, $2)
			  FROM old WHERE m.id = old.id RETURNING m.id)
		DELETE FROM attachments a USING old
		 WHERE a.conversation_id = old.conversation_id AND a.key IN (old.pk, old.vk)
		   AND NOT EXISTS (SELECT 1 FROM messages m2 WHERE m2.conversation_id = old.conversation_id AND m2.id <> old.id
		                    AND (m2.picture->>'key' = a.key OR m2.video->>'key' = a.key))`
	messageVersionsForgotten = `UPDATE message_edits SET text = NULL WHERE message_id = $1 AND text IS NOT NULL`
	reactionAdded            = `INSERT INTO reactions (message_id, emoji, user_id)
		SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM messages WHERE id = $1) ON CONFLICT DO NOTHING`
	reactionRemoved = `DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3`
)

// queueMessageLife queues the statements of an edit, a delete or a
// reaction recorded at pos.
func queueMessageLife(b *pgx.Batch, ev domain.Event, at time.Time, pos eventstore.Position) {
	switch e := ev.(type) {
	case domain.MessageEdited:
		b.Queue(messageEdited, e.MessageID, e.Text, at)
		b.Queue(messageEditRow, e.MessageID, int64(pos.Commit), int64(pos.Prepare), e.EditorID, e.Text, at)
	case domain.MessageDeleted:
		b.Queue(messageDeleted, e.MessageID, at)
		b.Queue(messageVersionsForgotten, e.MessageID)
	case domain.ReactionAdded:
		b.Queue(reactionAdded, e.MessageID, e.Emoji, e.UserID)
	case domain.ReactionRemoved:
		b.Queue(reactionRemoved, e.MessageID, e.Emoji, e.UserID)
	}
}

// replyTo is a message's reply_to column: NULL for none.
func replyTo(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
