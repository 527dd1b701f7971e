package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/history"
)

// HistoryBlocks keeps the index time travel reads the log through
// (history.Blocks) in public.history_blocks.
type HistoryBlocks struct{ db DB }

var _ history.Blocks = (*HistoryBlocks)(nil)

// NewHistoryBlocks returns HistoryBlocks on db.
func NewHistoryBlocks(db DB) *HistoryBlocks { return &HistoryBlocks{db: db} }

// lastBlocks picks each stream's last block the cut includes ($2: a time,
// or $3, $4: a position) and the state in force after it.
const lastBlocks = `SELECT s.stream, b.block, b.last_event_id, b.last_commit, b.last_prepare, b.last_at,
		(SELECT st.state FROM public.history_blocks st
		  WHERE st.stream_id = s.stream AND st.block <= b.block AND st.state IS NOT NULL
		  ORDER BY st.block DESC LIMIT 1)
	  FROM unnest($1::text[]) AS s(stream)
	 CROSS JOIN LATERAL (
		SELECT h.block, h.last_event_id, h.last_commit, h.last_prepare, h.last_at
		  FROM public.history_blocks h
		 WHERE h.stream_id = s.stream AND %s
		 ORDER BY %s DESC LIMIT 1) b`

var (
	lastBlocksByTime     = fmt.Sprintf(lastBlocks, `h.last_at <= $2`, `h.last_at DESC, h.block`)
	lastBlocksByPosition = fmt.Sprintf(lastBlocks, `(h.last_commit, h.last_prepare) <= ($2, $3)`, `h.last_commit DESC, h.last_prepare DESC, h.block`)
)

// Last implements history.Blocks.
func (h *HistoryBlocks) Last(ctx context.Context, streams []string, cut history.Cut) (map[string]history.Block, error) {
	var rows pgx.Rows
	var err error
	if p, ok := cut.Position(); ok {
		rows, err = h.db.Query(ctx, lastBlocksByPosition, streams, int64(p.Commit), int64(p.Prepare))
	} else {
		t, _ := cut.Time()
		rows, err = h.db.Query(ctx, lastBlocksByTime, streams, t)
	}
	if err != nil {
		return nil, fmt.Errorf("history blocks: %w", err)
	}
	out := make(map[string]history.Block, len(streams))
	var b history.Block
	var c, p int64
	_, err = pgx.ForEachRow(rows, []any{&b.Stream, &b.Index, &b.LastID, &c, &p, &b.LastAt, &b.State}, func() error {
		b.Last = eventstore.Position{Commit: uint64(c), Prepare: uint64(p)}
		out[b.Stream] = b
		b.State = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history blocks: %w", err)
	}
	return out, nil
}

// Save implements history.Blocks.
func (h *HistoryBlocks) Save(ctx context.Context, blocks []history.Block) error {
	n := len(blocks)
	streams, indexes, ids := make([]string, n), make([]int64, n), make([]uuid.UUID, n)
	commits, prepares, ats, states := make([]int64, n), make([]int64, n), make([]time.Time, n), make([]*string, n)
	for i, b := range blocks {
		streams[i], indexes[i], ids[i] = b.Stream, b.Index, b.LastID
		commits[i], prepares[i], ats[i] = int64(b.Last.Commit), int64(b.Last.Prepare), b.LastAt
		if b.State != nil {
			s := string(b.State)
			states[i] = &s
		}
	}
	_, err := h.db.Exec(ctx, `INSERT INTO public.history_blocks
			(stream_id, block, last_event_id, last_commit, last_prepare, last_at, state)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::timestamptz[], $7::jsonb[])
		ON CONFLICT DO NOTHING`, streams, indexes, ids, commits, prepares, ats, states)
	if err != nil {
		return fmt.Errorf("save history blocks: %w", err)
	}
	return nil
}

// Drop implements history.Blocks.
func (h *HistoryBlocks) Drop(ctx context.Context, stream string) error {
	if _, err := h.db.Exec(ctx, `DELETE FROM public.history_blocks WHERE stream_id = $1`, stream); err != nil {
		return fmt.Errorf("drop history blocks of %s: %w", stream, err)
	}
	return nil
}
