package readmodel

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The text of the index is the message's text with '<', '>' and '&' in
// characters of Unicode's private use area: PostgreSQL's text parser reads
// "<word>" as an HTML tag and "&name;" as an entity, and drops them (and
// what lies between a '<' and a '>') from both the index and the headline.
// ts_headline marks each match with two more such characters. Any of these
// characters in a message is dropped from the index, so every one in a
// headline is one of these; HeadlineHTML turns them into HTML.
const (
	markStart = "\uE000"
	markStop  = "\uE001"
	markLT    = "\uE002"
	markGT    = "\uE003"
	markAmp   = "\uE004"
)

var (
	toIndex = strings.NewReplacer(markStart, "", markStop, "", markLT, "", markGT, "", markAmp, "",
		"<", markLT, ">", markGT, "&", markAmp)
	toHTML = strings.NewReplacer(markStart, "<b>", markStop, "</b>", markLT, "&lt;", markGT, "&gt;", markAmp, "&amp;")
)

// IndexText is a message's text as the search index holds it.
func IndexText(text string) string { return toIndex.Replace(text) }

// HeadlineHTML makes a hit's headline HTML that is safe to insert: the
// text escaped, and each match between <b> and </b>, the only tags.
func HeadlineHTML(headline string) string { return toHTML.Replace(html.EscapeString(headline)) }

// searchTable is the live search index (migrations/search), a projection
// of its own beside the chat read model.
const searchTable = `search.messages`

// SearchHit is one message found, as the read model shows it, with an
// excerpt of its current text, in the index's form (see HeadlineHTML).
type SearchHit struct {
	Message  Message
	Headline string
}

// SearchPage is a page of hits, newest first; Next is the cursor of the
// older page (the last hit's id), zero when nothing older matches.
type SearchPage struct {
	Hits []SearchHit
	Next int64
}

// ErrUnknownCursor is returned by Search for a before cursor that names no
// message of the index.
var ErrUnknownCursor = errors.New("unknown search cursor")

// searchHeadline shows up to 35 words around the best match. The words
// 'simple' configuration is the index's (see migrations/search).
const searchHeadline = `StartSel=` + markStart + `, StopSel=` + markStop + `, MaxWords=35, MinWords=15`

// searchQuery finds the messages of rooms $1 is a member of now (the chat
// read model's members) whose current text matches the words $2 (web search
// syntax: words, "quoted phrases", or, -not), newest first by the log
// position of their sends, the limit ($3) plus one, before the position
// ($4, $5) when given. Deleted messages have no text in the index and never
// match. The headline is made for the rows shown only: it is the costly part.
const searchQuery = `WITH q AS (SELECT websearch_to_tsquery('simple', $2) AS q),
hits AS (
	SELECT s.message_id, s.text, s.commit_pos, s.prepare_pos
	  FROM ` + searchTable + ` s, q
	 WHERE s.tsv @@ q.q
	   AND s.conversation_id IN (SELECT mb.conversation_id FROM members mb WHERE mb.user_id = $1)
	   AND ($4::bigint IS NULL OR (s.commit_pos, s.prepare_pos) < ($4, $5))
	 ORDER BY s.commit_pos DESC, s.prepare_pos DESC
	 LIMIT $3)
SELECT ` + messageColumns + `, ts_headline('simple', h.text, q.q, '` + searchHeadline + `')
  FROM hits h JOIN messages m ON m.id = h.message_id, q
 ORDER BY h.commit_pos DESC, h.prepare_pos DESC`

// Search returns up to limit messages that match the words q, from rooms
// user is a member of, newest first, older than the message before when it
// is not zero (ErrUnknownCursor when the index has no such message).
//
// The index and the chat read model are projected apart: a hit is shown as
// the chat read model shows its message, and a hit that model does not
// show yet is left out.
func (s *Store) Search(ctx context.Context, user int64, q string, before int64, limit int) (SearchPage, error) {
	var bc, bp *int64
	if before > 0 {
		var c, p int64
		err := s.db.QueryRow(ctx, `SELECT commit_pos, prepare_pos FROM `+searchTable+` WHERE message_id = $1`, before).Scan(&c, &p)
		if errors.Is(err, pgx.ErrNoRows) {
			return SearchPage{}, ErrUnknownCursor
		}
		if err != nil {
			return SearchPage{}, fmt.Errorf("search: %w", err)
		}
		bc, bp = &c, &p
	}
	rows, err := s.db.Query(ctx, searchQuery, user, q, limit+1, bc, bp)
	if err != nil {
		return SearchPage{}, fmt.Errorf("search: %w", err)
	}
	hits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SearchHit, error) {
		var h SearchHit
		m, err := scanMessage(rowWith{Row: r, extra: []any{&h.Headline}})
		h.Message = m
		return h, err
	})
	if err != nil {
		return SearchPage{}, fmt.Errorf("search: %w", err)
	}
	page := SearchPage{Hits: hits}
	if len(hits) > limit {
		page.Hits = hits[:limit]
		page.Next = page.Hits[limit-1].Message.ID
	}
	if page.Hits == nil {
		page.Hits = []SearchHit{}
	}
	return page, nil
}

// rowWith is a row whose columns after a message's are scanned into extra.
type rowWith struct {
	pgx.Row
	extra []any
}

func (r rowWith) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.extra...)...) }
