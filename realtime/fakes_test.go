package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// hung bounds a wait that only ends this long after a failure.
const hung = 10 * time.Second

// fakeConn records what the hub writes to a connection.
type fakeConn struct {
	frames chan string
	mu     sync.Mutex
	closed *closeMsg
	closes int
}

func newConn() *fakeConn { return &fakeConn{frames: make(chan string, 10_000)} }

func (c *fakeConn) Write(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed != nil {
		return fmt.Errorf("closed")
	}
	c.frames <- string(frame)
	return nil
}

func (c *fakeConn) Close(code int, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes++
	if c.closed == nil {
		c.closed = &closeMsg{code, reason}
		close(c.frames)
	}
	return nil
}

func (c *fakeConn) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed != nil
}

func (c *fakeConn) closeMsg() (closeMsg, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == nil {
		return closeMsg{}, c.closes
	}
	return *c.closed, c.closes
}

// next returns the next frame, failing the test if none comes.
func (c *fakeConn) next(t *testing.T) string {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatal("connection closed, want a frame")
		}
		return f
	case <-time.After(hung):
		t.Fatal("no frame")
	}
	return ""
}

// none fails the test if a frame is queued now.
func (c *fakeConn) none(t *testing.T) {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			t.Fatalf("unexpected frame %q", f)
		}
	default:
	}
}

// fakeLog is a log in memory; SubscribeAll delivers what the test sends on live.
type fakeLog struct {
	mu     sync.Mutex
	events []eventstore.RecordedEvent
	live   chan eventstore.Delivery
	// reading, when set, hears every ReadAll, which then waits for gate.
	reading chan struct{}
	gate    chan struct{}
	read    int      // events returned by ReadStream
	readAll int      // events returned by ReadAll
	streams []string // streams read, in order
}

func (l *fakeLog) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	if l.reading != nil {
		l.reading <- struct{}{}
		<-l.gate
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []eventstore.RecordedEvent
	for _, e := range l.events {
		if from.Less(e.Position) && len(out) < count {
			out = append(out, e)
		}
	}
	l.readAll += len(out)
	return out, nil
}

// ReadStream reads the events of stream (their revisions are their order
// in it) and counts what it returns in read.
func (l *fakeLog) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	if l.reading != nil {
		l.reading <- struct{}{}
		<-l.gate
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []eventstore.RecordedEvent
	for _, e := range l.events {
		if e.Stream == stream {
			e.Revision = uint64(len(all))
			all = append(all, e)
		}
	}
	if len(all) == 0 {
		return nil, eventstore.ErrStreamNotFound
	}
	var out []eventstore.RecordedEvent
	if dir == eventstore.Backwards {
		for i := len(all) - 1; i >= 0 && len(out) < count; i-- {
			if all[i].Revision <= from {
				out = append(out, all[i])
			}
		}
	} else {
		for _, e := range all {
			if e.Revision >= from && len(out) < count {
				out = append(out, e)
			}
		}
	}
	l.read += len(out)
	l.streams = append(l.streams, stream)
	return out, nil
}

// reads returns how many events ReadStream and ReadAll returned, and the
// streams read.
func (l *fakeLog) reads() (stream, all int, streams []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.read, l.readAll, slices.Clone(l.streams)
}

func (l *fakeLog) SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case d := <-l.live:
			if err := handle(ctx, d); err != nil {
				return err
			}
		}
	}
}

// fakeWatermark is a watermark the test moves.
type fakeWatermark struct {
	mu      sync.Mutex
	pos     eventstore.Position
	changed chan struct{}
}

func newWatermark(at uint64) *fakeWatermark {
	return &fakeWatermark{pos: pos(at), changed: make(chan struct{})}
}

func (w *fakeWatermark) Position() eventstore.Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

func (w *fakeWatermark) Advance(p eventstore.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pos.Less(p) {
		w.pos = p
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

func (w *fakeWatermark) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

func (w *fakeWatermark) Wait(ctx context.Context, p eventstore.Position) error {
	for {
		w.mu.Lock()
		done, ch := !w.pos.Less(p), w.changed
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// fakeBus delivers every publish to every subscriber at once.
type fakeBus struct {
	mu   sync.Mutex
	subs []func(string)
}

func (b *fakeBus) Publish(ctx context.Context, channel, payload string) error {
	b.mu.Lock()
	subs := b.subs
	b.mu.Unlock()
	for _, s := range subs {
		s(payload)
	}
	return nil
}

func (b *fakeBus) Subscribe(channel string, onMessage func(string), onReady func()) {
	b.mu.Lock()
	b.subs = append(b.subs, onMessage)
	b.mu.Unlock()
	if onReady != nil {
		onReady()
	}
}

func pos(n uint64) eventstore.Position { return eventstore.Position{Commit: n, Prepare: n} }

// render renders "room:position:type" frames.
func render(e eventstore.RecordedEvent, base string) ([]byte, int64, bool) {
	var room int64
	if !parseRoom(e.Stream, &room) {
		return nil, 0, false
	}
	return fmt.Appendf(nil, "%d:%d:%s", room, e.Position.Commit, e.Type), room, true
}

func frame(room int64, at uint64, typ string) string { return fmt.Sprintf("%d:%d:%s", room, at, typ) }

// message is a message event of room at position at.
func message(room int64, at uint64) eventstore.RecordedEvent {
	return eventstore.RecordedEvent{Stream: fmt.Sprintf("conversation-%d", room), Position: pos(at), Type: domain.TypeMessageSent, Data: []byte("{}")}
}

func membership(typ string, room, user int64, at uint64) eventstore.RecordedEvent {
	data, _ := json.Marshal(map[string]int64{"conversation_id": room, "user_id": user})
	return eventstore.RecordedEvent{Stream: fmt.Sprintf("conversation-%d", room), Position: pos(at), Type: typ, Data: data}
}

func newTestHub(log *fakeLog, wm *fakeWatermark, bus Bus) *Hub {
	if log.live == nil {
		log.live = make(chan eventstore.Delivery)
	}
	return New(Config{Log: log, Watermark: wm, Bus: bus, Render: render, WriteWait: hung,
		Logger: slog.New(slog.DiscardHandler)})
}

func newTestSession(user, room int64) (*Session, *fakeConn) {
	c := newConn()
	return NewSession(c, user, uuid.New(), room, "http://x"), c
}
