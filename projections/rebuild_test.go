package projections_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

// readAhead is a log whose third read waits for its context to end and then
// takes a while to return, as a network read does. entered is closed when
// that read begins: by then the second batch waits in the rebuild's queue.
type readAhead struct {
	projections.LogReader
	calls   atomic.Int32
	active  atomic.Int32
	entered chan struct{}
}

func (l *readAhead) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	l.active.Add(1)
	defer l.active.Add(-1)
	if l.calls.Add(1) == 3 {
		close(l.entered)
		<-ctx.Done()
		for range 10000 {
			runtime.Gosched()
		}
		return nil, ctx.Err()
	}
	return l.LogReader.ReadAll(ctx, from, count)
}

// An interrupted rebuild returns only once its read-ahead has stopped: the
// reader decodes with the caller's Chat, which the caller may use at once
// for a second rebuild (the race detector caught the two side by side).
func TestInterruptedRebuildStopsItsReader(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.room(t, 2)
	for id := int64(1); id <= 40; id++ {
		l.message(t, id)
	}
	chat := projections.NewChat(l.reg)
	log := &readAhead{LogReader: l.store, entered: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := projections.Rebuild(ctx, l.pool, log, chat, projections.RebuildOptions{
		BatchSize: 2,
		Progress: func(int64) {
			<-log.entered // the next batch is queued and the read after it started
			cancel()
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Rebuild = %v; want context.Canceled", err)
	}
	if n := log.active.Load(); n != 0 {
		t.Fatalf("Rebuild returned with %d log reads still running", n)
	}
	if _, err := projections.Rebuild(t.Context(), l.pool, l.store, chat, projections.RebuildOptions{BatchSize: 7}); err != nil {
		t.Fatal(err)
	}
}

// A rebuild copies message rows in bulk and still writes the attachment
// rows of the messages that carry a picture or a video, each once.
func TestRebuildWritesAttachments(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.room(t, 1)
	for id := int64(1); id <= 9; id++ {
		m := domain.MessageSent{ConversationID: 1, MessageID: id, SenderID: 1, Text: "hello"}
		switch id % 3 {
		case 1:
			m.Picture = &domain.Attachment{Key: fmt.Sprintf("p%d", id), ContentType: "image/png"}
		case 2:
			m.Picture = &domain.Attachment{Key: fmt.Sprintf("p%d", id), ContentType: "image/png"}
			m.Video = &domain.Attachment{Key: fmt.Sprintf("v%d", id), ContentType: "video/mp4"}
		}
		l.append(t, domain.ConversationStream(1), m)
	}
	if _, err := projections.Rebuild(t.Context(), l.pool, l.store, projections.NewChat(l.reg), projections.RebuildOptions{BatchSize: 4}); err != nil {
		t.Fatal(err)
	}
	rows, err := l.pool.Query(t.Context(), `SELECT key FROM `+migrations.ReadModel.Qualified("attachments")+` ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"p1", "p2", "p4", "p5", "p7", "p8", "v2", "v5", "v8"}; !slices.Equal(keys, want) {
		t.Errorf("attachments after a rebuild: %v; want %v", keys, want)
	}
	var msgs int
	if err := l.pool.QueryRow(t.Context(), `SELECT count(*) FROM `+migrations.ReadModel.Qualified("messages")).Scan(&msgs); err != nil || msgs != 9 {
		t.Errorf("messages after a rebuild: %d (%v); want 9", msgs, err)
	}
}

// A rebuild counts no unread message while it loads the log: read
// receipts extend read_by alone, and the counters are set from the
// messages at the end (count_unread). Verify builds the same way, so it
// must find the result equal to the live projection's, which counts every
// event in order, whatever the batches: receipts before their message, by
// its sender, by a non-receiver, in the wrong room, twice, and in a later
// batch than the message; members joining late, leaving and returning.
func TestRebuildCountsUnreadAsLive(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.users(t, 4)
	room := func(id int64, members ...int64) {
		var ms []domain.Membership
		for _, u := range members {
			ms = append(ms, domain.Membership{UserID: u, MembershipID: id*10 + u})
		}
		l.append(t, domain.ConversationStream(id), domain.ConversationCreated{ConversationID: id, Type: domain.Group, CreatedBy: members[0], Members: ms})
	}
	send := func(room, id, sender int64, receivers ...int64) eventstore.Position {
		m := domain.MessageSent{ConversationID: room, MessageID: id, SenderID: sender, Receivers: receivers, Text: fmt.Sprintf("m%d", id)}
		if id%4 == 0 {
			m.Picture = &domain.Attachment{Key: fmt.Sprintf("p%d", id), ContentType: "image/png"}
		}
		return l.append(t, domain.ConversationStream(room), m)
	}
	read := func(room, reader int64, ids ...int64) eventstore.Position {
		return l.append(t, domain.ReceiptStream(room, reader), domain.MessagesRead{ConversationID: room, ReaderID: reader, MessageIDs: ids})
	}
	delivered := func(room, receiver int64, ids ...int64) {
		l.append(t, domain.ReceiptStream(room, receiver), domain.MessagesDelivered{ConversationID: room, ReceiverID: receiver, MessageIDs: ids})
	}
	room(1, 1, 2, 3)
	room(2, 1, 4)
	// Named by its creator, who is not its first member, and a member
	// named twice: the rebuild writes rooms in bulk as the live path does.
	name := "three"
	l.append(t, domain.ConversationStream(3), domain.ConversationCreated{ConversationID: 3, Type: domain.Group, Name: &name, CreatedBy: 2,
		Members: []domain.Membership{{UserID: 3, MembershipID: 33}, {UserID: 2, MembershipID: 32}, {UserID: 3, MembershipID: 34}}})
	read(1, 3, 5) // before message 5 is sent: no row to clear yet
	send(1, 1, 1, 2, 3)
	read(1, 2, 1)
	read(1, 2, 1) // again
	read(1, 1, 1) // its sender
	read(1, 4, 1) // not a receiver
	read(2, 3, 1) // the wrong room
	send(1, 2, 2, 1, 3)
	read(1, 1, 1, 2)
	read(1, 3, 1, 2)
	send(2, 3, 4, 1)
	delivered(2, 1, 3)
	send(1, 4, 3, 1, 2)
	send(1, 5, 1, 2, 3) // stays unread for 3
	send(2, 6, 1, 4)
	send(1, 7, 2, 1, 3)
	read(2, 4, 3, 6)
	read(1, 2, 4, 5)
	send(1, 8, 3, 1, 1, 2, 2) // a receiver named twice: counted once, as live
	read(1, 1, 8)
	read(1, 1, 4, 7)
	member := func(room, user, membership int64, joined bool) {
		if joined {
			l.append(t, domain.ConversationStream(room), domain.MemberJoined{ConversationID: room, UserID: user, MembershipID: membership})
		} else {
			l.append(t, domain.ConversationStream(room), domain.MemberLeft{ConversationID: room, UserID: user, MembershipID: membership})
		}
	}
	member(1, 4, 14, true) // joins late: messages 1 to 8 are not theirs
	send(1, 9, 1, 2, 3, 4)
	read(1, 4, 9, 8)
	member(1, 2, 12, false) // leaves with 8 and 9 unread
	send(1, 10, 1, 3, 4)
	read(1, 2, 10)         // not theirs
	member(1, 2, 22, true) // returns: 8 and 9 still unread, 10 not theirs
	send(1, 11, 3, 1, 2, 4)
	read(1, 2, 9)
	member(2, 4, 24, false) // leaves for good with 3 read and 6 read
	head := send(2, 12, 1)

	chat := l.projectTo(t, head)

	for _, batch := range []int{1, 2, 3, 5, 100} {
		l.wantVerified(t, chat, batch, fmt.Sprintf("batches of %d", batch))
	}
	// The swap applies the events that came during a rebuild in one
	// batch, counters and all: the whole log in one must give the same.
	bulk := migrations.ReadModel.Beside("bulk")
	if err := migrations.ApplyReadModel(t.Context(), l.pool, bulk); err != nil {
		t.Fatal(err)
	}
	events, err := l.store.ReadAll(t.Context(), eventstore.Position{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(t.Context(), l.pool, func(tx pgx.Tx) error { return chat.ApplyInto(t.Context(), tx, bulk, events) }); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"messages", "conversations", "members", "past_members"} {
		var differ int
		if err := l.pool.QueryRow(t.Context(), fmt.Sprintf(`SELECT count(*) FROM (
			(SELECT * FROM %[1]s EXCEPT ALL SELECT * FROM %[2]s) UNION ALL (SELECT * FROM %[2]s EXCEPT ALL SELECT * FROM %[1]s)) d`,
			migrations.ReadModel.Qualified(table), bulk.Qualified(table))).Scan(&differ); err != nil {
			t.Fatal(err)
		}
		if differ != 0 {
			t.Errorf("one bulk batch: %d rows of %s differ from the live projection", differ, table)
		}
	}

	// Each member's count is what they received and have not read.
	rows, err := l.pool.Query(t.Context(), `SELECT ARRAY[me.conversation_id, me.user_id,
			c.message_count - me.not_received - pm.read_count,
			(SELECT count(*) FROM readmodel.messages m WHERE m.conversation_id = me.conversation_id
			   AND m.sender_id <> me.user_id AND me.user_id = ANY(m.receivers) AND NOT me.user_id = ANY(m.read_by))]
		FROM readmodel.members me JOIN readmodel.conversations c ON c.id = me.conversation_id
		JOIN readmodel.past_members pm ON pm.user_id = me.user_id AND pm.conversation_id = me.conversation_id
		ORDER BY me.conversation_id, me.user_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[[4]int64])
	if err != nil {
		t.Fatal(err)
	}
	want := [][4]int64{{1, 1, 1, 1}, {1, 2, 2, 2}, {1, 3, 4, 4}, {1, 4, 2, 2}, {2, 1, 1, 1}, {3, 2, 0, 0}, {3, 3, 0, 0}}
	if !slices.Equal(got, want) {
		t.Errorf("room, member, unread count, unread messages = %v; want %v", got, want)
	}
}

// TestReplayKeepsUnreadCounts: replaying the whole log onto the live read
// model, whose members have left, returned, sent and read since, leaves
// every table as a rebuild makes it: the replayed creation of a room puts
// back a member who has left since (3) as a join would, and the counters
// are counted again at the end.
func TestReplayKeepsUnreadCounts(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	l.users(t, 3)
	l.append(t, domain.ConversationStream(1), domain.ConversationCreated{ConversationID: 1, Type: domain.Group, CreatedBy: 1,
		Members: []domain.Membership{{UserID: 1, MembershipID: 11}, {UserID: 2, MembershipID: 12}, {UserID: 3, MembershipID: 13}}})
	send := func(id, sender int64, receivers ...int64) {
		l.append(t, domain.ConversationStream(1), domain.MessageSent{ConversationID: 1, MessageID: id, SenderID: sender, Receivers: receivers, Text: "m"})
	}
	send(1, 2, 1, 3)
	send(2, 1, 2, 3)
	send(3, 1, 2, 3)
	l.append(t, domain.ReceiptStream(1, 2), domain.MessagesRead{ConversationID: 1, ReaderID: 2, MessageIDs: []int64{2}})
	l.append(t, domain.ConversationStream(1), domain.MemberLeft{ConversationID: 1, UserID: 2, MembershipID: 12})
	send(4, 3, 1)
	l.append(t, domain.ConversationStream(1), domain.MemberJoined{ConversationID: 1, UserID: 2, MembershipID: 22})
	l.append(t, domain.ConversationStream(1), domain.MemberLeft{ConversationID: 1, UserID: 3, MembershipID: 13})
	send(5, 1, 2)
	head := l.append(t, domain.ReceiptStream(1, 2), domain.MessagesRead{ConversationID: 1, ReaderID: 2, MessageIDs: []int64{5}})

	chat := l.projectTo(t, head)

	if _, err := projections.Replay(t.Context(), l.pool, l.store, chat, eventstore.Position{}, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	l.wantVerified(t, chat, 0, "after the replay")
	// User 2 sent 1, received 2 and 3 (read 2), and not 4: one unread.
	var unread int64
	if err := l.pool.QueryRow(t.Context(), `SELECT c.message_count - me.not_received - pm.read_count
		FROM readmodel.members me JOIN readmodel.conversations c ON c.id = me.conversation_id
		JOIN readmodel.past_members pm ON pm.user_id = me.user_id AND pm.conversation_id = me.conversation_id
		WHERE me.conversation_id = 1 AND me.user_id = 2`).Scan(&unread); err != nil || unread != 1 {
		t.Errorf("user 2's unread count after the replay = %d (%v); want 1", unread, err)
	}
	st, err := projections.ReadState(t.Context(), l.pool, projections.ChatName)
	if err != nil || st.Paused {
		t.Errorf("chat projection after the replay: %+v (%v); want it running", st, err)
	}
}

// projectTo runs the chat projector until the live checkpoint reaches head,
// and returns the projection.
func (l *testLog) projectTo(t *testing.T, head eventstore.Position) *projections.Chat {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	chat := projections.NewChat(l.reg)
	done := make(chan error, 1)
	go func() {
		done <- projections.NewProjector(l.pool, l.store, chat, projections.ProjectorOptions{}).RunOnce(ctx)
	}()
	l.waitCheckpoint(t, head)
	cancel()
	<-done
	return chat
}

// wantVerified checks that Verify, in batches of batch events (0: the
// default), finds every table of the live read model as a rebuild makes it.
func (l *testLog) wantVerified(t *testing.T, chat *projections.Chat, batch int, label string) {
	t.Helper()
	diffs, _, err := projections.Verify(t.Context(), l.pool, l.store, chat, projections.RebuildOptions{BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		if !d.Equal {
			t.Errorf("%s: %s differs from a rebuild: only live %v, only rebuilt %v", label, d.Table, d.OnlyLive, d.OnlyRebuilt)
		}
	}
}
