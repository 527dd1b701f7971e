package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

var _ commands.ProjectedMessages = (*Lookups)(nil)

// projectedMessage reads a message's row, its reactions and the chat
// projection's checkpoint ('chat', projections.ChatName) in one statement,
// hence one snapshot: the row is the log's effect through that checkpoint,
// whatever batch commits meanwhile. A missing row or checkpoint reads as
// NULLs (no message; nothing projected yet).
const projectedMessage = `SELECT cp.commit_pos, cp.prepare_pos, m.conversation_id, m.sender_id, m.deleted_at IS NOT NULL,
		(SELECT jsonb_object_agg(r.emoji, r.users) FROM (
			SELECT emoji, array_agg(user_id ORDER BY user_id) AS users FROM reactions
			 WHERE message_id = $1 GROUP BY emoji) r)
	FROM (SELECT 1) one
	LEFT JOIN checkpoints cp ON cp.projection = 'chat'
	LEFT JOIN messages m ON m.id = $1`

// ProjectedMessage implements commands.ProjectedMessages.
func (s *Lookups) ProjectedMessage(ctx context.Context, id int64) (domain.MessageState, bool, eventstore.Position, error) {
	var commit, prepare, conv, sender *int64
	var deleted *bool
	var reactions []byte
	if err := s.db.QueryRow(ctx, projectedMessage, id).Scan(&commit, &prepare, &conv, &sender, &deleted, &reactions); err != nil {
		return domain.MessageState{}, false, eventstore.Position{}, fmt.Errorf("projected message: %w", err)
	}
	var through eventstore.Position
	if commit != nil && prepare != nil {
		through = eventstore.Position{Commit: uint64(*commit), Prepare: uint64(*prepare)}
	}
	if conv == nil || sender == nil {
		return domain.MessageState{ID: id}, false, through, nil
	}
	m := domain.MessageState{ID: id, ConversationID: *conv, SenderID: *sender, Deleted: deleted != nil && *deleted,
		Reactions: map[string][]int64{}}
	if len(reactions) > 0 {
		if err := json.Unmarshal(reactions, &m.Reactions); err != nil {
			return domain.MessageState{}, false, through, fmt.Errorf("projected message: reactions: %w", err)
		}
	}
	return m, true, through, nil
}
