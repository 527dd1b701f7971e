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
