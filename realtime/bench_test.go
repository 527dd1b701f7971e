package realtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/realtime"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// BenchmarkResumeLogLength reconnects a socket with since 1,000 events of
// its room back, in a PostgreSQL log that also holds 10,000 or 200,000
// events of other rooms, interleaved with the room's (RESUME_NOISE, comma
// separated, changes the sizes). The cost must not grow with the log:
// compare the sub-benchmarks of one run. scan-log is the baseline of the
// same run: reading the whole gap of the log, as a resume once did.
func BenchmarkResumeLogLength(b *testing.B) {
	sizes := []int{10_000, 200_000}
	if v := os.Getenv("RESUME_NOISE"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("RESUME_NOISE: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, noise := range sizes {
		b.Run(fmt.Sprintf("other=%d", noise), func(b *testing.B) {
			store, since, upTo := resumeLog(b, noise)
			b.Run("resume", func(b *testing.B) { benchResume(b, store, since, upTo) })
			b.Run("scan-log", func(b *testing.B) {
				for b.Loop() {
					n := 0
					for from := since; from.Less(upTo); {
						evs, err := store.ReadAll(context.Background(), from, 512)
						if err != nil || len(evs) == 0 {
							b.Fatal(err)
						}
						for _, e := range evs {
							if e.Stream == domain.ConversationStream(benchRoom) && !upTo.Less(e.Position) {
								n++
							}
						}
						from = evs[len(evs)-1].Position
					}
					if n != roomMissed {
						b.Fatalf("scanned %d of the room's events; want %d", n, roomMissed)
					}
				}
			})
		})
	}
}

const (
	benchRoom  = 7
	roomMissed = 1000
)

// resumeLog fills a log: the room's first event (since), then its 1,000
// events with noise events of other rooms spread evenly between them.
func resumeLog(b *testing.B, noise int) (*postgres.Store, eventstore.Position, eventstore.Position) {
	b.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := migrations.Apply(ctx, pool); err != nil {
		b.Fatal(err)
	}
	store := postgres.New(pool, postgres.Options{Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(store.Close)
	ev := func() eventstore.EventData {
		return eventstore.EventData{ID: uuid.New(), Type: domain.TypeMessageSent, Data: []byte(`{"text":"x"}`), Metadata: []byte(`{}`)}
	}
	first, err := store.Append(ctx, domain.ConversationStream(benchRoom), eventstore.Any(), ev())
	if err != nil {
		b.Fatal(err)
	}
	var last eventstore.AppendResult
	per := noise / roomMissed
	for i := range roomMissed {
		if per > 0 {
			batch := make([]eventstore.EventData, per)
			for j := range batch {
				batch[j] = ev()
			}
			if _, err := store.Append(ctx, domain.ConversationStream(int64(100+i%50)), eventstore.Any(), batch...); err != nil {
				b.Fatal(err)
			}
		}
		if last, err = store.Append(ctx, domain.ConversationStream(benchRoom), eventstore.Any(), ev()); err != nil {
			b.Fatal(err)
		}
	}
	return store, first.Position, last.Position
}

// benchResume starts a session with since and waits for its 1,000 frames.
func benchResume(b *testing.B, store *postgres.Store, since, upTo eventstore.Position) {
	h := realtime.New(realtime.Config{
		Log: store, Watermark: fixedWatermark{upTo}, Logger: slog.New(slog.DiscardHandler),
		Render: func(e eventstore.RecordedEvent, _ string) ([]byte, int64, bool) {
			return []byte(e.Position.String()), benchRoom, e.Stream == domain.ConversationStream(benchRoom)
		},
		Members: func(context.Context, int64) ([]int64, error) { return []int64{1, 2}, nil },
	})
	member := func(context.Context) (bool, error) { return true, nil }
	for b.Loop() {
		c := &countConn{want: roomMissed, done: make(chan struct{})}
		so := realtime.NewSession(c, 1, uuid.New(), benchRoom, "")
		c.so = so
		h.Start(context.Background(), so, since, nil, member)
		select {
		case <-c.done:
		case <-time.After(time.Minute):
			b.Fatalf("resume sent %d frames; want %d", c.n.Load(), roomMissed)
		}
		h.Remove(so)
	}
}

// countConn takes frames at once and tells when it has want of them.
type countConn struct {
	so   *realtime.Session
	want int64
	n    atomic.Int64
	done chan struct{}
}

func (c *countConn) Write(frame []byte) error {
	c.so.Sent()
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return nil
}

func (c *countConn) Close(int, string) error { return nil }

func (c *countConn) IsClosed() bool { return false }

// fixedWatermark is a read model projected up to p.
type fixedWatermark struct{ p eventstore.Position }

func (w fixedWatermark) Position() eventstore.Position                   { return w.p }
func (w fixedWatermark) Wait(context.Context, eventstore.Position) error { return nil }
func (w fixedWatermark) Changed() <-chan struct{}                        { return nil }
