package projections

import (
	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
)

// queueForgotten rewrites what the read model holds of a forgotten user so
// that it matches what a rebuild now makes of the log, where the shredder
// gives their personal fields as placeholders (domain.PersonalData): their
// name reads domain.ForgottenUsername; their messages' text
// domain.ForgottenText, with no attachments (an attachment row goes when no
// other message of its room names the file); the names and descriptions of
// the rooms they created domain.ForgottenText (null ones stay null).
//
// Every statement is idempotent. Rooms renamed by another user after their
// creation are not told apart here: the rename's projection must keep who
// last set the name once renames are projected.
func queueForgotten(b *pgx.Batch, e domain.UserForgotten) {
	b.Queue(`UPDATE users SET username = $2, username_key = $3, key_version = $4 WHERE id = $1`,
		e.UserID, domain.ForgottenUsername, domain.NormalizeUsername(domain.ForgottenUsername), UsernameKeyVersion)
	// The outer DELETE sees the messages as they were before the UPDATE
	// (one snapshot): the files the user's messages named, kept where a
	// message of someone else in the same room names them too.
	b.Queue(`WITH named AS (
			SELECT DISTINCT m.conversation_id, k.key
			  FROM messages m, LATERAL (VALUES (m.picture->>'key'), (m.video->>'key')) AS k(key)
			 WHERE m.sender_id = $1 AND k.key IS NOT NULL),
		rewritten AS (
			UPDATE messages SET picture = NULL, video = NULL,
			       text = CASE WHEN text IS NULL THEN NULL ELSE $2 END, -- a tombstone stays one
			       original_text = CASE WHEN original_text IS NULL THEN NULL ELSE $2 END
			 WHERE sender_id = $1)
		DELETE FROM attachments a USING named n
		 WHERE a.key = n.key AND a.conversation_id = n.conversation_id
		   AND NOT EXISTS (SELECT 1 FROM messages o
		                    WHERE o.conversation_id = a.conversation_id AND o.sender_id <> $1
		                      AND (o.picture->>'key' = a.key OR o.video->>'key' = a.key))`,
		e.UserID, domain.ForgottenText)
	// Every version of their messages' text (message_life.go).
	b.Queue(`UPDATE message_edits SET text = $2 WHERE editor_id = $1 AND text IS NOT NULL`, e.UserID, domain.ForgottenText)
	// The names and descriptions they wrote, where nobody renamed the
	// room since.
	b.Queue(`UPDATE conversations
		    SET name = CASE WHEN name_by = $1 AND name IS NOT NULL THEN $2 ELSE name END,
		        description = CASE WHEN description_by = $1 AND description IS NOT NULL THEN $2 ELSE description END
		  WHERE name_by = $1 OR description_by = $1`, e.UserID, domain.ForgottenText)
}
