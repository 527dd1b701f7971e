// Package readmodel reads the projected tables: the queries behind the list
// endpoints. Everything here can be rebuilt from the log; the write side's
// own state (ids, idempotency keys, snapshots, sessions) and the look-ups
// the commands make are package postgres. Queries run through DB, which
// both a pool and a transaction satisfy.
package readmodel

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// DB is the narrow interface of a pool or a transaction.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store answers read-model queries. The connection's search_path must put
// the read-model schema first (see cmd/chatd), so a rebuilt schema swapped in
// under the same name is picked up without a restart.
type Store struct {
	db DB
}

// New returns a Store on db.
func New(db DB) *Store { return &Store{db: db} }

// User is a registered user.
// Its password hash is write-side state, not projected (see
// postgres.Credentials).
type User struct {
	ID       int64
	Username string
}

// ErrNotFound is returned by single-row look-ups that find nothing.
var ErrNotFound = errors.New("not found")

// UserByUsername finds a user by any equivalent form of their name (its
// key, domain.NormalizeUsername: case, width and compatibility forms
// ignored). Should a log from before that rule hold two users of one key,
// the one of exactly that name wins, then the oldest. ErrNotFound when none.
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	var u User
	err := s.db.QueryRow(ctx, `SELECT id, username FROM users WHERE username_key = $1
		ORDER BY username = $2 DESC, id LIMIT 1`,
		domain.NormalizeUsername(username), domain.CleanUsername(username)).Scan(&u.ID, &u.Username)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("user by name: %w", err)
	}
	return u, nil
}

// UserByID finds a user by id. ErrNotFound when none.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	var u User
	err := s.db.QueryRow(ctx, `SELECT id, username FROM users WHERE id = $1`, id).Scan(&u.ID, &u.Username)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("user by id: %w", err)
	}
	return u, nil
}

// NamedAttachments returns, of keys, those of attachment files that some
// message names.
func (s *Store) NamedAttachments(ctx context.Context, keys []string) (map[string]bool, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT key FROM attachments WHERE key = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("named attachments: %w", err)
	}
	named, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("named attachments: %w", err)
	}
	out := make(map[string]bool, len(named))
	for _, k := range named {
		out[k] = true
	}
	return out, nil
}

// Chatroom is a conversation as the API shows it.
type Chatroom struct {
	ID          int64
	Members     []int64
	Type        string
	Name        *string
	Description *string
	CreatedBy   int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	UnreadCount int64
	LastMessage *Message
	// Admins are the members who administer the room, ascending.
	Admins []int64
}

// Message is a message as the API shows it.
type Message struct {
	ID             int64
	ConversationID int64
	SenderID       int64
	Receivers      []int64
	ReadBy         []int64
	Text           string
	Picture        *domain.Attachment
	Video          *domain.Attachment
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Position       eventstore.Position
	// A message's life after it is sent (message_life.go).
	Life
	// DeliveredTo are the receivers the message reached, ascending.
	DeliveredTo []int64
}

const messageColumns = `m.id, m.conversation_id, m.sender_id, m.receivers, m.read_by, m.text, m.picture, m.video, m.created_at, m.updated_at, m.commit_pos, m.prepare_pos, ` + lifeColumns + `,
	m.delivered_to`

func scanMessage(row pgx.Row) (Message, error) {
	var m Message
	var pic, vid []byte
	var c, p int64
	var reactions []byte
	if err := row.Scan(&m.ID, &m.ConversationID, &m.SenderID, &m.Receivers, &m.ReadBy, &m.Text, &pic, &vid, &m.CreatedAt, &m.UpdatedAt, &c, &p,
		&m.ReplyTo, &m.EditedAt, &m.DeletedAt, &reactions, &m.DeliveredTo); err != nil {
		return m, err
	}
	if err := m.Life.scanReactions(reactions); err != nil {
		return m, err
	}
	m.Position = eventstore.Position{Commit: uint64(c), Prepare: uint64(p)}
	var err error
	if m.Picture, err = attachment(pic); err != nil {
		return m, err
	}
	if m.Video, err = attachment(vid); err != nil {
		return m, err
	}
	if m.Receivers == nil {
		m.Receivers = []int64{}
	}
	if m.ReadBy == nil {
		m.ReadBy = []int64{}
	}
	if m.DeliveredTo == nil {
		m.DeliveredTo = []int64{}
	}
	return m, nil
}

func attachment(b []byte) (*domain.Attachment, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var a domain.Attachment
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Message returns one message. ErrNotFound when none.
func (s *Store) Message(ctx context.Context, id int64) (Message, error) {
	m, err := scanMessage(s.db.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages m WHERE m.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	return m, err
}

// Page selects a window of a list: the newest Limit items when Before and
// After are zero, those before Before, or those after After. Before and
// After are message ids (cursors); what "before" and "after" mean is the
// list's order: see ConversationMessages and UserMessages.
type Page struct {
	Before, After int64
	// Forward pages forward from After even when After is 0, that is from
	// the start (After > 0 implies it).
	Forward bool
	Limit   int
}

// PageResult is a window of messages in ascending id order, and the pages
// on either side of it (nil where nothing lies).
type PageResult struct {
	Messages   []Message
	Prev, Next *Page
}

// keyset is the order a list is paged in, and how a cursor becomes a bound
// in it.
type keyset struct {
	// cols are the key's columns, compared as a row and ordered by.
	cols []string
	// bound returns the key of the message a cursor names, one value per
	// column, or ok false when the cursor names no message of the list (it
	// is then compared with message ids).
	bound func(ctx context.Context, cursor int64) (key []any, ok bool, err error)
	// byID: the key is the message id, and a page empty on one side of its
	// cursor links to the other side by the cursor's neighbouring id. Other
	// keys link to the newest page or the first, which is what lies on the
	// other side of a cursor with nothing past it.
	byID bool
	// page, when set, writes the page's query itself from the cursor's
	// condition on m (or ""), the order (descending or not) and the
	// limit's parameter; exists writes the query of whether any item meets
	// a condition. pageQuery's base is then unused.
	page   func(cond string, desc bool, limit string) string
	exists func(cond string) string
	// ordered: the queries walk indexes in order and stop early, so they
	// run with bitmap scans off (Store.queries).
	ordered bool
}

// idKeys pages in message id order.
var idKeys = keyset{
	cols: []string{"m.id"},
	bound: func(_ context.Context, cursor int64) ([]any, bool, error) {
		return []any{cursor}, true, nil
	},
	byID: true,
}

// cursorCond returns, for a cursor, the condition "key op cursor" with its
// parameters numbered from n on, and their values.
func (k keyset) cursorCond(ctx context.Context, cursor int64, n int) (func(op string) (string, []any), error) {
	key, ok, err := k.bound(ctx, cursor)
	if err != nil {
		return nil, err
	}
	if !ok {
		return func(op string) (string, []any) { return fmt.Sprintf(` AND m.id %s $%d`, op, n), []any{cursor} }, nil
	}
	params := make([]string, len(key))
	for i := range key {
		params[i] = fmt.Sprintf("$%d", n+i)
	}
	return func(op string) (string, []any) {
		return fmt.Sprintf(` AND (%s) %s (%s)`, strings.Join(k.cols, ", "), op, strings.Join(params, ", ")), key
	}, nil
}

// orderBy orders by the key, ascending or descending.
func (k keyset) orderBy(desc bool) string {
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	return ` ORDER BY ` + strings.Join(k.cols, dir+", ") + dir
}

// pageQuery runs a keyset-paginated message query. base must select
// messageColumns from messages m with its own WHERE conditions, which use
// the parameters args.
func (s *Store) pageQuery(ctx context.Context, base string, k keyset, p Page, args ...any) (PageResult, error) {
	n := len(args)
	baseArgs := args[:n:n]
	forward := p.After > 0 || p.Forward
	var cursor int64 // 0: none
	op := ""
	switch {
	case forward:
		cursor, op = p.After, ">"
	case p.Before > 0:
		cursor, op = p.Before, "<"
	}
	var cursorCond func(op string) (string, []any)
	var cond string
	if cursor > 0 {
		var err error
		if cursorCond, err = k.cursorCond(ctx, cursor, n+1); err != nil {
			return PageResult{}, fmt.Errorf("list messages: %w", err)
		}
		var vals []any
		cond, vals = cursorCond(op)
		args = append(args, vals...)
	}
	tail := k.orderBy(!forward) + fmt.Sprintf(` LIMIT $%d`, len(args)+1)
	args = append(args, p.Limit+1)
	sql := base + cond + tail
	if k.page != nil {
		sql = k.page(cond, !forward, fmt.Sprintf("$%d", len(args)))
	}
	db := s.queries(k.ordered)
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return PageResult{}, fmt.Errorf("list messages: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) { return scanMessage(r) })
	if err != nil {
		return PageResult{}, fmt.Errorf("list messages: %w", err)
	}
	more := len(msgs) > p.Limit
	if more {
		msgs = msgs[:p.Limit]
	}
	if !forward {
		slices.Reverse(msgs) // key order
	}
	// Whether items lie on the far side of the cursor (up to After when
	// paging forward, from Before on when paging back) is asked, not
	// assumed, so that a Link is given only when there is something to follow.
	var beyond bool
	if cursor > 0 {
		cond, vals := cursorCond(map[string]string{">": "<=", "<": ">="}[op])
		q := base + cond
		if k.exists != nil {
			q = k.exists(cond)
		}
		if err := db.QueryRow(ctx, `SELECT EXISTS (`+q+`)`, append(baseArgs, vals...)...).Scan(&beyond); err != nil {
			return PageResult{}, fmt.Errorf("list messages: %w", err)
		}
	}
	hasPrev, hasNext := more, beyond
	if forward {
		hasPrev, hasNext = beyond, more
	}
	var res PageResult
	switch {
	case hasPrev && len(msgs) > 0:
		res.Prev = &Page{Before: msgs[0].ID, Limit: p.Limit}
	case hasPrev && k.byID && cursor < math.MaxInt64:
		res.Prev = &Page{Before: cursor + 1, Limit: p.Limit}
	case hasPrev:
		// Nothing past the cursor (or no id past it at all): all lies
		// before it, which is the newest page.
		res.Prev = &Page{Limit: p.Limit}
	}
	switch {
	case hasNext && len(msgs) > 0:
		res.Next = &Page{After: msgs[len(msgs)-1].ID, Forward: true, Limit: p.Limit}
	case hasNext && k.byID:
		res.Next = &Page{After: cursor - 1, Forward: true, Limit: p.Limit}
	case hasNext:
		res.Next = &Page{Forward: true, Limit: p.Limit} // nothing before the cursor: all lies after it
	}
	// The window was taken in key order; the list shows it in id order.
	slices.SortFunc(msgs, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
	if msgs == nil {
		msgs = []Message{}
	}
	res.Messages = msgs
	return res, nil
}

// ConversationMessages lists a conversation's messages, paged in id order:
// message ids rise in the room's log order, so a page after a message
// never misses one projected later.
func (s *Store) ConversationMessages(ctx context.Context, conversation int64, p Page) (PageResult, error) {
	return s.pageQuery(ctx, `SELECT `+messageColumns+` FROM messages m WHERE m.conversation_id = $1`, idKeys, p, conversation)
}

// UserMessages lists the messages a user sent or received, across rooms.
//
// Ids rise in each room's log order but not across rooms (they are taken
// in blocks per process, and rooms commit in any order), so a message of
// one room may be projected after a message of another with a higher id.
// This list therefore pages in log order: a cursor (a message id) stands
// for that message's log position, and the page after it holds the
// messages whose positions follow, however their ids compare. Each page
// is shown in id order. A cursor that names none of the user's messages is
// compared with message ids instead.
func (s *Store) UserMessages(ctx context.Context, user int64, p Page) (PageResult, error) {
	keys := keyset{
		cols: []string{"m.commit_pos", "m.prepare_pos"},
		bound: func(ctx context.Context, cursor int64) ([]any, bool, error) {
			var c, pp int64
			err := s.db.QueryRow(ctx, `SELECT m.commit_pos, m.prepare_pos FROM messages m
				WHERE m.id = $2 AND (m.sender_id = $1 OR $1 = ANY(m.receivers))`, user, cursor).Scan(&c, &pp)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil, false, nil
			}
			if err != nil {
				return nil, false, err
			}
			return []any{c, pp}, true, nil
		},
		page:    userMessagesPage,
		ordered: true,
		exists: func(cond string) string {
			return `SELECT 1 FROM past_members pm CROSS JOIN LATERAL (
				SELECT 1 FROM messages m WHERE ` + userRoomScope + cond + `) AS m WHERE pm.user_id = $1`
		},
	}
	return s.pageQuery(ctx, "", keys, p, user)
}

// queries returns the store's database or, for ordered queries, one that
// sends each query in a batch behind a setting that turns bitmap scans off
// for it. A query that walks each room's messages in index order and stops
// after a few may otherwise be planned as bitmap scans, which read every
// message of each room in range and sort them: the planner's guess when
// the statistics were taken on a smaller table (say a minute into a burst
// of messages) is a few rows per room, and 100 rooms of 800 messages then
// took 40 ms instead of 2.
func (s *Store) queries(ordered bool) DB {
	if ordered {
		return withoutBitmaps{s.db}
	}
	return s.db
}

// withoutBitmaps runs each query in a batch after set_config(...,
// true), whose setting lasts until the batch's implicit transaction ends
// (in a transaction, until it ends).
type withoutBitmaps struct{ DB }

const bitmapsOff = `SELECT set_config('enable_bitmapscan', 'off', true)`

func (w withoutBitmaps) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	b := &pgx.Batch{}
	b.Queue(bitmapsOff)
	b.Queue(sql, args...)
	br := w.DB.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close() // the same error
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close() // the same error
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (w withoutBitmaps) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := w.Query(ctx, sql, args...)
	return errRow{rows: rows, err: err}
}

// batchRows closes its batch with the rows.
type batchRows struct {
	pgx.Rows
	br   pgx.BatchResults
	done bool
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.done {
		r.done = true
		_ = r.br.Close()
	}
}

// errRow is a pgx.Row over rows (which it closes) or an error.
type errRow struct {
	rows pgx.Rows
	err  error
}

func (r errRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// userRoomScope selects, of the messages m of room pm (a row of user $1's
// past_members), those the user sent or received: between their first
// joining and their leaving (readmodel 0019), their own or sent to them.
const userRoomScope = `m.conversation_id = pm.conversation_id
	AND (m.commit_pos, m.prepare_pos) > (coalesce(pm.joined_commit, -1), coalesce(pm.joined_prepare, -1))
	AND (m.commit_pos, m.prepare_pos) < (coalesce(pm.left_commit, ` + maxPosition + `), coalesce(pm.left_prepare, ` + maxPosition + `))
	AND (m.sender_id = $1 OR $1 = ANY(m.receivers))`

// maxPosition is past every log position, as SQL.
const maxPosition = "9223372036854775807"

// userMessagesPage is the query of a page of UserMessages: a merge of the
// user's rooms, each walked in log order (descending when desc) from the
// cursor's condition cond. A page of n messages lies within the first
// message of each room (the first in the page's order) up to the edge, the
// n-th of those firsts: the n rooms whose first messages come before it
// hold n messages up to it. So each room is walked only up to the edge,
// and a room whose first message lies beyond it not at all: a page reads a
// message per room and then the messages up to the edge, at most n in each
// of at most n rooms (n² only when n rooms are all busier than the edge).
func userMessagesPage(cond string, desc bool, limit string) string {
	dir, upTo, none := " ASC", "<=", maxPosition
	if desc {
		dir, upTo, none = " DESC", ">=", "-1"
	}
	order := ` ORDER BY m.commit_pos` + dir + `, m.prepare_pos` + dir
	return `WITH rooms AS (
			SELECT pm.*, f.commit_pos AS first_commit, f.prepare_pos AS first_prepare
			  FROM past_members pm CROSS JOIN LATERAL (
				SELECT m.commit_pos, m.prepare_pos FROM messages m WHERE ` + userRoomScope + cond + order + ` LIMIT 1) AS f
			 WHERE pm.user_id = $1),
		edge AS (
			SELECT coalesce(max(e.c), ` + none + `) AS c, coalesce(max(e.p), ` + none + `) AS p FROM (
				SELECT r.first_commit AS c, r.first_prepare AS p FROM rooms r
				 ORDER BY r.first_commit` + dir + `, r.first_prepare` + dir + ` OFFSET ` + limit + ` - 1 LIMIT 1) AS e)
		SELECT ` + messageColumns + ` FROM edge CROSS JOIN rooms pm CROSS JOIN LATERAL (
			SELECT m.* FROM messages m WHERE ` + userRoomScope + cond + `
			   AND (m.commit_pos, m.prepare_pos) ` + upTo + ` (edge.c, edge.p)` + order + ` LIMIT ` + limit + `) AS m
		 WHERE (pm.first_commit, pm.first_prepare) ` + upTo + ` (edge.c, edge.p)` + order + ` LIMIT ` + limit
}

const chatroomColumns = `c.id, c.type, c.name, c.description, c.created_by, c.created_at, c.updated_at,
	coalesce(mem.members, '{}'), coalesce(mem.admins, '{}')`

// chatroomMembers joins each room c with its members and its admins (mem),
// read in one pass over the room's members.
const chatroomMembers = `CROSS JOIN LATERAL (
	SELECT array_agg(mm.user_id ORDER BY mm.user_id) AS members,
	       array_agg(mm.user_id ORDER BY mm.user_id) FILTER (WHERE mm.admin) AS admins
	  FROM members mm WHERE mm.conversation_id = c.id) AS mem`

func scanChatroom(row pgx.Row, c *Chatroom, extra ...any) error {
	dest := append([]any{&c.ID, &c.Type, &c.Name, &c.Description, &c.CreatedBy, &c.CreatedAt, &c.UpdatedAt, &c.Members,
		&c.Admins}, extra...)
	return row.Scan(dest...)
}

// Chatroom returns one conversation. ErrNotFound when none.
func (s *Store) Chatroom(ctx context.Context, id int64) (Chatroom, error) {
	var c Chatroom
	err := scanChatroom(s.db.QueryRow(ctx, `SELECT `+chatroomColumns+` FROM conversations c `+chatroomMembers+` WHERE c.id = $1`, id), &c)
	if errors.Is(err, pgx.ErrNoRows) {
		return Chatroom{}, ErrNotFound
	}
	return c, err
}

// UserChatrooms lists a user's conversations, most recently active first,
// with their unread counts and last messages.
func (s *Store) UserChatrooms(ctx context.Context, user int64) ([]Chatroom, error) {
	rows, err := s.db.Query(ctx, `SELECT `+chatroomColumns+`,
			greatest(0, c.message_count - me.not_received - coalesce(
				(SELECT pm.read_count FROM past_members pm WHERE pm.user_id = $1 AND pm.conversation_id = c.id), 0)),
			c.last_message_id
		FROM members me JOIN conversations c ON c.id = me.conversation_id `+chatroomMembers+`
		WHERE me.user_id = $1
		ORDER BY c.last_activity_at DESC, c.id DESC`, user)
	if err != nil {
		return nil, fmt.Errorf("list chatrooms: %w", err)
	}
	var lastIDs []int64
	rooms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Chatroom, error) {
		var c Chatroom
		var last *int64
		err := scanChatroom(r, &c, &c.UnreadCount, &last)
		if last != nil {
			lastIDs = append(lastIDs, *last)
			c.LastMessage = &Message{ID: *last}
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list chatrooms: %w", err)
	}
	if len(lastIDs) == 0 {
		return rooms, nil
	}
	mrows, err := s.db.Query(ctx, `SELECT `+messageColumns+` FROM messages m WHERE m.id = ANY($1)`, lastIDs)
	if err != nil {
		return nil, fmt.Errorf("list chatrooms: %w", err)
	}
	msgs, err := pgx.CollectRows(mrows, func(r pgx.CollectableRow) (Message, error) { return scanMessage(r) })
	if err != nil {
		return nil, fmt.Errorf("list chatrooms: %w", err)
	}
	byID := make(map[int64]*Message, len(msgs))
	for i := range msgs {
		byID[msgs[i].ID] = &msgs[i]
	}
	for i := range rooms {
		if rooms[i].LastMessage != nil {
			rooms[i].LastMessage = byID[rooms[i].LastMessage.ID]
		}
	}
	return rooms, nil
}

// Membership reports whether a conversation exists and whether user is a member of it.
func (s *Store) Membership(ctx context.Context, conversation, user int64) (exists, member bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1),
		EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)`, conversation, user).Scan(&exists, &member)
	if err != nil {
		return false, false, fmt.Errorf("membership: %w", err)
	}
	return exists, member, nil
}

// AttachmentAccess reports whether an attachment key exists, and, if user may
// see it (a member of a conversation it was sent to), its content type.
func (s *Store) AttachmentAccess(ctx context.Context, key string, user int64) (exists bool, contentType string, err error) {
	var ct *string
	err = s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM attachments WHERE key = $1),
		(SELECT a.content_type FROM attachments a JOIN members m ON m.conversation_id = a.conversation_id AND m.user_id = $2
		  WHERE a.key = $1 LIMIT 1)`, key, user).Scan(&exists, &ct)
	if err != nil {
		return false, "", fmt.Errorf("attachment access: %w", err)
	}
	if ct != nil {
		contentType = *ct
	}
	return exists, contentType, nil
}
