package chatd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/evchat/evchat/eventstore"
	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/internal/chatd"
)

// countingLog counts the events the API's log reads return, by kind.
type countingLog struct {
	chathttp.Log
	mu      sync.Mutex
	all     int      // events returned by ReadAll
	stream  int      // events returned by ReadStream
	streams []string // streams read
}

func (l *countingLog) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	evs, err := l.Log.ReadAll(ctx, from, count)
	l.mu.Lock()
	l.all += len(evs)
	l.mu.Unlock()
	return evs, err
}

func (l *countingLog) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	evs, err := l.Log.ReadStream(ctx, stream, dir, from, count)
	l.mu.Lock()
	l.stream += len(evs)
	l.streams = append(l.streams, stream)
	l.mu.Unlock()
	return evs, err
}

func (l *countingLog) reset() {
	l.mu.Lock()
	l.all, l.stream, l.streams = 0, 0, nil
	l.mu.Unlock()
}

func (l *countingLog) counts() (all, stream int, streams []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all, l.stream, slices.Clone(l.streams)
}

// TestWSResumeReadsOnlyTheRoom: a socket resuming in a room while the log
// holds many more events of another room gets what it missed, having read
// one short probe of the log and then only its room's streams.
func TestWSResumeReadsOnlyTheRoom(t *testing.T) {
	t.Parallel()
	counter := &countingLog{}
	s := startServer(t, func(c *chatd.Config) {
		c.Hooks.APILog = func(l chathttp.Log) chathttp.Log { counter.Log = l; return counter }
	})
	a, b := s.newUser(), s.newUser()
	room, other := s.room(a, b), s.room(a)
	so := s.wsConnect(b, room, "")
	first := so.expectMessage(t, s.send(a, room, "first"))
	_ = so.conn.Close()
	var missed []int64
	for i := range 3 {
		missed = append(missed, s.send(a, room, fmt.Sprint("missed ", i)))
	}
	const noise = 300 // more than the probe of the log a resume reads first
	for i := range noise {
		s.send(a, other, fmt.Sprint("noise ", i))
	}
	s.caughtUp()
	counter.reset()
	so = s.wsConnect(b, room, "since="+url.QueryEscape(first.Position))
	for _, id := range missed {
		so.expectMessage(t, id)
	}
	so.expectMessage(t, s.send(a, room, "live"))
	all, stream, streams := counter.counts()
	// The room holds fewer than 16 events: one page of its streams.
	if all > 256 || stream > 16 {
		t.Errorf("the resume read %d events of the log and %d of streams; want at most one probe (256) and the room's (under 16)", all, stream)
	}
	for _, name := range streams {
		own := []string{fmt.Sprintf("conversation-%d", room)}
		for _, u := range []int64{a.ID, b.ID} {
			own = append(own, fmt.Sprintf("receipts-%d-%d", room, u), fmt.Sprintf("deliveries-%d-%d", room, u))
		}
		if !slices.Contains(own, name) {
			t.Errorf("the resume read stream %s; want only room %d's", name, room)
		}
	}
}

// TestWSResumeTooOld: since further back than CHAT_RESUME_MAX of the
// room's events (here the start of the log) gets the resume_too_old error
// frame and close code 4002; a socket without since is served.
func TestWSResumeTooOld(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *chatd.Config) { c.ResumeMax = 5 })
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	for i := range 6 {
		s.send(a, room, fmt.Sprint("m", i))
	}
	s.caughtUp()
	so := s.wsConnect(b, room, "since="+url.QueryEscape(eventstore.Start.String()))
	f := so.expect(t, "error")
	var body struct{ Code string }
	if err := json.Unmarshal(f.Raw, &body); err != nil || body.Code != "resume_too_old" {
		t.Fatalf("error frame %s; want code resume_too_old", f.Raw)
	}
	so.expectClose(t, 4002)

	so = s.wsConnect(b, room, "")
	so.expectMessage(t, s.send(a, room, "live"))
}
