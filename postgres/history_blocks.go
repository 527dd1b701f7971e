package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// lastBlocks finds the cut in each stream ($2: a time, or $2, $3: a
// position): the last block the cut includes, the state in force after it,
// and how many leading marks of the block after it (block 0 without one)
// the cut includes (-1: that block is not stored, or has no marks).
const lastBlocks = `SELECT s.stream, b.block, b.last_event_id, b.last_commit, b.last_prepare, b.last_at,
		(SELECT st.state FROM public.history_blocks st
		  WHERE st.stream_id = s.stream AND st.block <= b.block AND st.state IS NOT NULL
		  ORDER BY st.block DESC LIMIT 1),
		CASE WHEN n.event_ats IS NULL THEN -1 ELSE coalesce(
			(SELECT min(x.i) - 1 FROM unnest(n.event_commits, n.event_prepares, n.event_ats) WITH ORDINALITY AS x(c, p, a, i)
			  WHERE %[1]s), cardinality(n.event_ats)) END
	  FROM unnest($1::text[]) AS s(stream)
	  LEFT JOIN LATERAL (
		SELECT h.block, h.last_event_id, h.last_commit, h.last_prepare, h.last_at
		  FROM public.history_blocks h
		 WHERE h.stream_id = s.stream AND %[2]s
		 ORDER BY %[3]s DESC LIMIT 1) b ON true
	  LEFT JOIN public.history_blocks n ON n.stream_id = s.stream AND n.block = coalesce(b.block + 1, 0)
	 WHERE b.block IS NOT NULL OR n.block IS NOT NULL`

var (
	lastBlocksByTime = fmt.Sprintf(lastBlocks, `x.a > $2`,
		`h.last_at <= $2`, `h.last_at DESC, h.block`)
	lastBlocksByPosition = fmt.Sprintf(lastBlocks, `(x.c, x.p) > ($2, $3)`,
		`(h.last_commit, h.last_prepare) <= ($2, $3)`, `h.last_commit DESC, h.last_prepare DESC, h.block`)
)

// Last implements history.Blocks.
func (h *HistoryBlocks) Last(ctx context.Context, streams []string, cut history.Cut) (map[string]history.Found, error) {
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
	out := make(map[string]history.Found, len(streams))
	var stream string
	var index, c, p *int64
	var id *uuid.UUID
	var at *time.Time
	var state []byte
	var past int64
	_, err = pgx.ForEachRow(rows, []any{&stream, &index, &id, &c, &p, &at, &state, &past}, func() error {
		f := history.Found{Past: int(past)}
		if index != nil {
			f.HasBlock = true
			f.Block = history.Block{Stream: stream, Index: *index, LastID: *id,
				Last: eventstore.Position{Commit: uint64(*c), Prepare: uint64(*p)}, LastAt: *at, State: state}
		}
		out[stream] = f
		state = nil
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
	// The marks go as text array literals: unnest cannot take a
	// two-dimensional array apart row by row.
	markCommits, markPrepares, markAts := make([]*string, n), make([]*string, n), make([]*string, n)
	for i, b := range blocks {
		markCommits[i], markPrepares[i], markAts[i] = markArrays(b.Marks)
	}
	_, err := h.db.Exec(ctx, `INSERT INTO public.history_blocks
			(stream_id, block, last_event_id, last_commit, last_prepare, last_at, state, event_commits, event_prepares, event_ats)
		SELECT s, b, i, c, p, a, st, mc::bigint[], mp::bigint[], ma::timestamptz[]
		  FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::timestamptz[], $7::jsonb[],
		              $8::text[], $9::text[], $10::text[]) AS x(s, b, i, c, p, a, st, mc, mp, ma)
		ON CONFLICT DO NOTHING`, streams, indexes, ids, commits, prepares, ats, states, markCommits, markPrepares, markAts)
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

// markArrays writes a block's marks as PostgreSQL array literals; nil
// (NULL) unless the block has a mark for each of its events.
func markArrays(marks []history.Mark) (commits, prepares, ats *string) {
	if len(marks) != history.BlockSize {
		return nil, nil, nil
	}
	var c, p, a strings.Builder
	for i, m := range marks {
		sep := ","
		if i == 0 {
			sep = "{"
		}
		c.WriteString(sep + strconv.FormatUint(m.Pos.Commit, 10))
		p.WriteString(sep + strconv.FormatUint(m.Pos.Prepare, 10))
		a.WriteString(sep + `"` + m.At.UTC().Format("2006-01-02 15:04:05.999999Z07") + `"`)
	}
	cs, ps, as := c.String()+"}", p.String()+"}", a.String()+"}"
	return &cs, &ps, &as
}
