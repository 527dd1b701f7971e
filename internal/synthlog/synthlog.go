// Package synthlog makes synthetic chat logs that are valid for the domain:
// users, group rooms, then messages spread over the rooms with a read
// receipt every 20 messages. The rebuild benchmark and chatbench's growth
// scenario write them straight into the PostgreSQL event store, far faster
// than any client could send them.
package synthlog

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
)

// Config shapes a log.
type Config struct {
	// Events is the length of the log, the users and rooms included. A log
	// shorter than CreationEvents still holds every user and room.
	Events int
	// Users must be at least 66, so that a room's members are distinct.
	Users int
	Rooms int
}

// CreationEvents is how many events make the users and rooms (two per
// user, one per room), before any message.
func (c Config) CreationEvents() int { return 2*c.Users + c.Rooms }

// Messages is how many messages Rows writes: the events after the users and
// rooms are messages, and a read receipt after every 20th.
func (c Config) Messages() int {
	rows, msg := c.CreationEvents(), 0
	for rows < c.Events {
		msg++
		rows++
		if msg%20 == 0 && rows < c.Events {
			rows++
		}
	}
	return msg
}

// Columns are the events table's columns a row fills, in order.
var Columns = []string{"event_id", "stream_id", "revision", "type", "data", "metadata"}

// Username is the name of user u (1-based).
func Username(u int64) string { return "user" + strconv.FormatInt(u, 10) }

// Members returns the members of room r (1-based) in order, the creator
// first: 3 to 6 users spread over the population.
func (c Config) Members(r int64) []int64 {
	size := 3 + r%4
	users := int64(c.Users)
	out := make([]int64, 0, size)
	for i := int64(0); i < size; i++ {
		out = append(out, (r*7+i*13)%users+1)
	}
	return out
}

// Rows returns the rows of the log: user ids 1 to Users, room ids 1 to
// Rooms, membership and message ids from 1, messages round-robin over the
// rooms with a read receipt every 20 messages.
func Rows(c Config) [][]any {
	reg := domain.NewRegistry()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([][]any, 0, max(c.Events, c.CreationEvents()))
	revs := map[string]int64{}
	add := func(stream string, e domain.Event, actor int64) {
		typ, data, _ := reg.Encode(e)
		md, _ := json.Marshal(domain.Metadata{ActorID: actor, RequestID: "bench", Time: at, Version: reg.Version(typ)})
		at = at.Add(time.Millisecond)
		rows = append(rows, []any{uuid.Must(uuid.NewV7()), stream, revs[stream], typ, string(data), string(md)})
		revs[stream]++
	}
	users, rooms := int64(c.Users), int64(c.Rooms)
	for u := int64(1); u <= users; u++ {
		add(domain.UsernameStream(Username(u)), domain.UsernameReserved{Username: Username(u), UserID: u}, u)
		add(domain.UserStream(u), domain.UserRegistered{UserID: u, Username: Username(u), PasswordSet: true}, u)
	}
	members := make([][]int64, rooms+1)
	membership := int64(0)
	for r := int64(1); r <= rooms; r++ {
		members[r] = c.Members(r)
		ms := make([]domain.Membership, 0, len(members[r]))
		for _, u := range members[r] {
			membership++
			ms = append(ms, domain.Membership{UserID: u, MembershipID: membership})
		}
		add(domain.ConversationStream(r), domain.ConversationCreated{ConversationID: r, Type: domain.Group, CreatedBy: members[r][0], Members: ms}, members[r][0])
	}
	msg := int64(0)
	for len(rows) < c.Events {
		r := msg%rooms + 1
		msg++
		sender := members[r][msg%int64(len(members[r]))]
		var receivers []int64
		for _, u := range members[r] {
			if u != sender {
				receivers = append(receivers, u)
			}
		}
		add(domain.ConversationStream(r), domain.MessageSent{ConversationID: r, MessageID: msg, SenderID: sender, Receivers: receivers, Text: "message " + strconv.FormatInt(msg, 10)}, sender)
		if msg%20 == 0 && len(rows) < c.Events {
			add(domain.ReceiptStream(r, receivers[0]), domain.MessagesRead{ConversationID: r, ReaderID: receivers[0], MessageIDs: []int64{msg}}, receivers[0])
		}
	}
	return rows
}

// Load writes rows into the events table of a migrated, empty event store
// with one COPY, records each stream's revision as an append would, and
// analyzes the table.
func Load(ctx context.Context, pool *pgxpool.Pool, rows [][]any) error {
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, Columns, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, `INSERT INTO streams SELECT stream_id, max(revision) FROM events GROUP BY stream_id; ANALYZE events`)
	return err
}
