package projections

import (
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// Chat projects users, chatrooms, members, messages, unread counts and read
// receipts. Every statement is idempotent, so replaying a batch is harmless.
type Chat struct {
	registry *domain.Registry
}

var _ Projection = (*Chat)(nil)

// NewChat returns the chat projection.
func NewChat(r *domain.Registry) *Chat { return &Chat{registry: r} }

// ChatName is the checkpoint name of the chat projection.
const ChatName = "chat"

// Name implements Projection.
func (*Chat) Name() string { return ChatName }

// Decode returns the domain event and metadata of a recorded event, upcast
// to the current version (domain.Registry.DecodeRecorded).
func Decode(r *domain.Registry, e eventstore.RecordedEvent) (domain.Event, domain.Metadata, bool, error) {
	return r.DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
}

// Apply implements Projection.
func (c *Chat) Apply(b *pgx.Batch, events []eventstore.RecordedEvent) error {
	return c.apply(b, events, false)
}

// apply queues the statements of events. messagesCopied is set by the bulk
// path, which has loaded the message rows of every MessageSent
// with COPY already: of those it queues only the attachment rows.
func (c *Chat) apply(b *pgx.Batch, events []eventstore.RecordedEvent, messagesCopied bool) error {
	var maxIDs [4]int64 // users, conversations, memberships, messages
	bump := func(kind int, id int64) { maxIDs[kind] = max(maxIDs[kind], id) }
	for _, re := range events {
		ev, md, ok, err := Decode(c.registry, re)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		at := md.Time
		switch e := ev.(type) {
		case domain.UsernameReserved:
			// Its user id is used even when the user never was (its stream
			// may hold a domain.RegistrationAbandoned).
			bump(0, e.UserID)
		case domain.UserRegistered:
			bump(0, e.UserID)
			b.Queue(`INSERT INTO users (id, username, username_key, key_version, created_at)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
				e.UserID, e.Username, domain.NormalizeUsername(e.Username), UsernameKeyVersion, at)
			if e.LegacyPasswordHash != "" {
				// A version 1 event of an old log: its hash moves to the
				// write side's credentials table (public schema, found
				// through the search path), unless a password was stored
				// there since. New events never carry one.
				b.Queue(`INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)
					ON CONFLICT (user_id) DO NOTHING`, e.UserID, e.LegacyPasswordHash)
			}
		case domain.ConversationCreated:
			bump(1, e.ConversationID)
			users := make([]int64, len(e.Members))
			mids := make([]int64, len(e.Members))
			for i, m := range e.Members {
				users[i], mids[i] = m.UserID, m.MembershipID
				bump(2, m.MembershipID)
			}
			b.Queue(`INSERT INTO conversations (id, type, name, description, created_by, created_at, updated_at, last_activity_at,
					name_by, description_by)
				VALUES ($1, $2, $3, $4, $5, $6, $6, $6,
					CASE WHEN $3::text IS NOT NULL THEN $5::bigint END, CASE WHEN $4::text IS NOT NULL THEN $5::bigint END)
				ON CONFLICT DO NOTHING`,
				e.ConversationID, string(e.Type), e.Name, e.Description, e.CreatedBy, at)
			// not_received as for a join: 0 for a new room, and on a
			// replay, where a member who left since comes back, all but
			// what they had received.
			b.Queue(`INSERT INTO members (conversation_id, user_id, membership_id, joined_at, not_received)
				SELECT $1, u, m, $4,
					coalesce((SELECT message_count FROM conversations WHERE id = $1), 0)
					- coalesce((SELECT received_count FROM past_members WHERE user_id = u AND conversation_id = $1), 0)
				  FROM unnest($2::bigint[], $3::bigint[]) AS t(u, m) ON CONFLICT DO NOTHING`,
				e.ConversationID, users, mids, at)
			b.Queue(pastMembers, e.ConversationID, users, int64(re.Position.Commit), int64(re.Position.Prepare))
		case domain.MemberJoined:
			bump(2, e.MembershipID)
			// A returning member did not receive what was sent while they
			// were away: all but what they received before (readmodel 0019).
			b.Queue(`INSERT INTO members (conversation_id, user_id, membership_id, joined_at, not_received)
				VALUES ($1, $2, $3, $4,
					coalesce((SELECT message_count FROM conversations WHERE id = $1), 0)
					- coalesce((SELECT received_count FROM past_members WHERE user_id = $2 AND conversation_id = $1), 0))
				ON CONFLICT DO NOTHING`, e.ConversationID, e.UserID, e.MembershipID, at)
			b.Queue(pastMembers, e.ConversationID, []int64{e.UserID}, int64(re.Position.Commit), int64(re.Position.Prepare))
			b.Queue(`UPDATE conversations SET updated_at = greatest(updated_at, $2) WHERE id = $1`, e.ConversationID, at)
		case domain.MemberLeft:
			// What the member received stays with their past membership,
			// for their unread count should they return.
			b.Queue(`WITH gone AS (
					DELETE FROM members WHERE conversation_id = $1 AND user_id = $2 AND membership_id = $3 RETURNING not_received)
				UPDATE past_members pm
				   SET received_count = coalesce((SELECT message_count FROM conversations WHERE id = $1), 0) - gone.not_received,
				       left_commit = $4, left_prepare = $5
				  FROM gone WHERE pm.user_id = $2 AND pm.conversation_id = $1`,
				e.ConversationID, e.UserID, e.MembershipID, int64(re.Position.Commit), int64(re.Position.Prepare))
			b.Queue(`UPDATE conversations SET updated_at = greatest(updated_at, $2) WHERE id = $1`, e.ConversationID, at)
		case domain.MessageSent:
			if messagesCopied {
				c.queueAttachments(b, e)
				break
			}
			bump(3, e.MessageID)
			c.queueMessage(b, e, at, re.Position)
		case domain.MessageEdited, domain.MessageDeleted, domain.ReactionAdded, domain.ReactionRemoved:
			queueMessageLife(b, e, at, re.Position)
		case domain.UserForgotten:
			queueForgotten(b, e)
		case domain.MessagesRead:
			b.Queue(markReadSQL, e.ReaderID, e.ConversationID, e.MessageIDs)
		}
		c.applyRooms(b, ev, at)
	}
	// Keep the id sequences ahead of the log: when this read model is built
	// from a log that is older than its database (a restore, a new read
	// replica of an EventStoreDB log), the sequences would otherwise hand out
	// ids that are taken. In normal running they are ahead and nothing moves.
	for i, seq := range []string{"ids.users", "ids.conversations", "ids.memberships", "ids.messages"} {
		if maxIDs[i] > 0 {
			b.Queue(`SELECT setval('`+seq+`', $1) FROM `+seq+` WHERE last_value < $1`, maxIDs[i])
		}
	}
	return nil
}

// markReadSQL adds reader $1 to the read_by of the messages $3 of room $2
// they received and had not read, and counts them in the reader's
// read_count (readmodel 0019). Each message is looked up by key (see
// deliveredSQL for why LATERAL).
const markReadSQL = `WITH r AS (
		SELECT DISTINCT m.id FROM unnest($3::bigint[]) AS want(id) CROSS JOIN LATERAL (
			SELECT m.id, m.conversation_id, m.sender_id, m.receivers, m.read_by FROM messages m WHERE m.id = want.id LIMIT 1) AS m
		 WHERE m.conversation_id = $2 AND m.sender_id <> $1 AND $1 = ANY(m.receivers) AND NOT $1 = ANY(m.read_by)),
	newly AS (
		UPDATE messages m SET read_by = (SELECT array_agg(x ORDER BY x) FROM unnest(m.read_by || $1::bigint) AS x)
		  FROM r WHERE m.id = r.id
		RETURNING m.id)
	UPDATE past_members SET read_count = read_count + (SELECT count(*) FROM newly)
	 WHERE user_id = $1 AND conversation_id = $2 AND EXISTS (SELECT 1 FROM newly)`

// pastMembers records that users are, and so have been, members of a room
// (a leave keeps the row): a past listing of their rooms looks there. The
// first joining's position stays; a return clears the leaving's, and moves
// what they received before into their membership's not_received.
const pastMembers = `INSERT INTO past_members (user_id, conversation_id, joined_commit, joined_prepare)
	SELECT DISTINCT u, $1::bigint, $3::bigint, $4::bigint FROM unnest($2::bigint[]) AS u
	ON CONFLICT (user_id, conversation_id) DO UPDATE SET received_count = 0, left_commit = NULL, left_prepare = NULL`

func (c *Chat) queueMessage(b *pgx.Batch, e domain.MessageSent, at time.Time, pos eventstore.Position) {
	receivers := e.Receivers
	if receivers == nil {
		receivers = []int64{}
	}
	// The message, its sender's not_received and the room's count and
	// last activity, in one statement; a message already there changes
	// no count.
	b.Queue(`WITH m AS (
			INSERT INTO messages (id, conversation_id, sender_id, receivers, text, picture, video, created_at, updated_at, commit_pos, prepare_pos, reply_to)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) ON CONFLICT DO NOTHING RETURNING id),
		sender AS (
			UPDATE members SET not_received = not_received + 1
			 WHERE conversation_id = $2 AND user_id = $3 AND EXISTS (SELECT 1 FROM m))
		UPDATE conversations SET last_activity_at = greatest(last_activity_at, $8), last_message_id = greatest(last_message_id, $1),
			message_count = message_count + (SELECT count(*) FROM m)
		WHERE id = $2`,
		e.MessageID, e.ConversationID, e.SenderID, receivers, e.Text,
		attachmentJSON(e.Picture), attachmentJSON(e.Video), at, int64(pos.Commit), int64(pos.Prepare), replyTo(e.ReplyTo))
	c.queueAttachments(b, e)
}

func (c *Chat) queueAttachments(b *pgx.Batch, e domain.MessageSent) {
	for _, a := range []*domain.Attachment{e.Picture, e.Video} {
		if a != nil {
			b.Queue(`INSERT INTO attachments (key, conversation_id, content_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				a.Key, e.ConversationID, a.ContentType)
		}
	}
}

func attachmentJSON(a *domain.Attachment) []byte {
	if a == nil {
		return nil
	}
	b, _ := json.Marshal(a)
	return b
}
