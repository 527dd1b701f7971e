package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/eventstore"
)

// SendKeys keeps the idempotency keys of message sends in public.send_keys:
// (user, key) → the message it made, or the request that holds its claim.
type SendKeys struct{ db DB }

var _ commands.SendKeys = (*SendKeys)(nil)

// NewSendKeys returns SendKeys on db.
func NewSendKeys(db DB) *SendKeys { return &SendKeys{db: db} }

// claimKey inserts a claim, or returns the row that was there, in one
// statement. A row that a concurrent claim inserted after this statement's
// snapshot is seen by neither half (the insert does nothing, the select
// does not see it): the caller asks again.
const claimKey = `WITH ins AS (
		INSERT INTO public.send_keys (user_id, key, conversation_id, owner) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING RETURNING conversation_id)
	SELECT true, conversation_id, NULL::bigint, NULL::bigint, NULL::bigint, NULL::uuid FROM ins
	UNION ALL
	SELECT false, conversation_id, message_id, commit_pos, prepare_pos, owner FROM public.send_keys
	 WHERE user_id = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM ins)`

// claimAttempts bounds the re-asks of claimKey; each needs a concurrent
// claim that commits inside the previous statement's window.
const claimAttempts = 5

// Claim implements commands.SendKeys.
func (s *SendKeys) Claim(ctx context.Context, user int64, key string, conversation int64, owner uuid.UUID) (commands.KeyedSend, bool, error) {
	var k commands.KeyedSend
	var claimed bool
	var msg, c, p *int64
	var holder *uuid.UUID
	for attempt := 1; ; attempt++ {
		err := s.db.QueryRow(ctx, claimKey, user, key, conversation, owner).
			Scan(&claimed, &k.ConversationID, &msg, &c, &p, &holder)
		if errors.Is(err, pgx.ErrNoRows) && attempt < claimAttempts {
			continue
		}
		if err != nil {
			return k, false, fmt.Errorf("claim send key: %w", err)
		}
		break
	}
	if msg != nil && c != nil && p != nil {
		k.MessageID, k.Position = *msg, eventstore.Position{Commit: uint64(*c), Prepare: uint64(*p)}
	}
	if holder != nil {
		k.Owner = *holder
	}
	return k, claimed, nil
}

// takeOverKey moves a claim without a message from one owner to another.
// IS NOT DISTINCT FROM: a claim made before owners were recorded has a NULL
// owner, which the caller names as uuid.Nil.
const takeOverKey = `UPDATE public.send_keys SET owner = $4
	WHERE user_id = $1 AND key = $2 AND message_id IS NULL AND owner IS NOT DISTINCT FROM $3`

// TakeOver implements commands.SendKeys.
func (s *SendKeys) TakeOver(ctx context.Context, user int64, key string, from, to uuid.UUID) (bool, error) {
	var prev *uuid.UUID
	if from != uuid.Nil {
		prev = &from
	}
	tag, err := s.db.Exec(ctx, takeOverKey, user, key, prev, to)
	if err != nil {
		return false, fmt.Errorf("take over send key: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// completeKey records the message a key made. It inserts when the claim is
// gone (a send that completes without one, as keys recorded before claims
// existed did) and never overwrites a completed key: the first message wins.
const completeKey = `INSERT INTO public.send_keys (user_id, key, conversation_id, message_id, commit_pos, prepare_pos)
	VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (user_id, key) DO UPDATE SET message_id = excluded.message_id,
		commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos
	WHERE send_keys.message_id IS NULL`

// Complete implements commands.SendKeys.
func (s *SendKeys) Complete(ctx context.Context, user int64, key string, k commands.KeyedSend) error {
	_, err := s.db.Exec(ctx, completeKey, user, key, k.ConversationID, k.MessageID, int64(k.Position.Commit), int64(k.Position.Prepare))
	if err != nil {
		return fmt.Errorf("complete send key: %w", err)
	}
	return nil
}

// releaseKey frees a claim only for its owner and only while it made no
// message: a refused request cannot free a key another request appends
// under.
const releaseKey = `DELETE FROM public.send_keys WHERE user_id = $1 AND key = $2 AND message_id IS NULL AND owner = $3`

// Release implements commands.SendKeys.
func (s *SendKeys) Release(ctx context.Context, user int64, key string, owner uuid.UUID) error {
	if _, err := s.db.Exec(ctx, releaseKey, user, key, owner); err != nil {
		return fmt.Errorf("release send key: %w", err)
	}
	return nil
}
