package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// receipt is a read receipt of reader in room at position at.
func receipt(room, reader int64, at uint64) eventstore.RecordedEvent {
	return eventstore.RecordedEvent{Stream: domain.ReceiptStream(room, reader), Position: pos(at), Type: domain.TypeMessagesRead, Data: []byte("{}")}
}

// busyLog is a log of other rooms' events (noise of them), with room 7's
// events interleaved: its creation, then msgs messages and a receipt of
// user 2 after each.
func busyLog(noise, msgs int) (*fakeLog, []eventstore.RecordedEvent) {
	l := &fakeLog{}
	at := uint64(0)
	next := func() uint64 { at++; return at }
	var room []eventstore.RecordedEvent
	room = append(room, membership(domain.TypeMemberJoined, 7, 2, next()))
	l.events = append(l.events, room[0])
	perGap := noise / (msgs + 1)
	for i := 0; i <= msgs; i++ {
		for range perGap {
			l.events = append(l.events, message(int64(100+at%50), next()))
		}
		if i == msgs {
			break
		}
		m, r := message(7, next()), receipt(7, 2, next())
		l.events = append(l.events, m, r)
		room = append(room, m, r)
	}
	return l, room
}

// TestResumeReadsOnlyTheRoomsStreams: a resume in a room while the log
// holds many other rooms' events reads one short probe of the log, then
// the room's own streams, and only the part after since: the reads do not
// grow with the log.
func TestResumeReadsOnlyTheRoomsStreams(t *testing.T) {
	reads := map[int]int{}
	for _, noise := range []int{10_000, 100_000} {
		t.Run(fmt.Sprint(noise, " other events"), func(t *testing.T) {
			log, room := busyLog(noise, 50)
			wm := newWatermark(log.events[len(log.events)-1].Position.Commit)
			h := newTestHub(log, wm, nil)
			h.cfg.Members = func(context.Context, int64) ([]int64, error) { return []int64{1, 2}, nil }
			so, c := newTestSession(1, 7)
			h.add(so)
			since := room[len(room)-21].Position // 20 of the room's events missed
			h.resume(context.Background(), so, since)
			for _, e := range room[len(room)-20:] {
				if got, want := c.next(t), frame(7, e.Position.Commit, e.Type); got != want {
					t.Fatalf("frame %q; want %q", got, want)
				}
				so.Sent()
			}
			c.none(t)
			if so.State() != Live {
				t.Fatalf("state %v; want live", so.State())
			}
			read, all, streams := log.reads()
			reads[noise] = read + all
			if read > len(room) || all > probeSize || read+all != reads[10_000] {
				t.Errorf("read %d events of streams, %d of the log; want at most the room's %d and one probe (%d), as many as with no other rooms' (%d)",
					read, all, len(room), probeSize, reads[10_000])
			}
			for _, s := range streams {
				if s != "conversation-7" && s != "receipts-7-1" && s != "receipts-7-2" {
					t.Errorf("read stream %s; want only room 7's", s)
				}
			}
		})
	}
}

// TestResumeTooOld: since more than ResumeMax of the room's events back
// (here the start of the log, as a client forging since=0-0 would send)
// gets the resume_too_old error frame and a close, after reading no more
// than the bound.
func TestResumeTooOld(t *testing.T) {
	log, _ := busyLog(20_000, 600) // 1201 events of room 7
	wm := newWatermark(log.events[len(log.events)-1].Position.Commit)
	h := newTestHub(log, wm, nil)
	h.cfg.Members = func(context.Context, int64) ([]int64, error) { return []int64{2}, nil }
	so, c := newTestSession(2, 7)
	h.add(so)
	h.resume(context.Background(), so, eventstore.Start)
	var f struct{ Type, Code, Detail string }
	if err := json.Unmarshal([]byte(c.next(t)), &f); err != nil || f.Type != "error" || f.Code != "resume_too_old" {
		t.Fatalf("frame %+v (%v); want an error frame with code resume_too_old", f, err)
	}
	if msg, _ := c.closeMsg(); msg.code != CloseResumeTooOld || h.Has(so) {
		t.Fatalf("close %v, registered %v; want %d and removed", msg, h.Has(so), CloseResumeTooOld)
	}
	if read, all, _ := log.reads(); read > DefaultResumeMax+1 || all > probeSize {
		t.Errorf("read %d events of streams, %d of the log; want at most %d and %d", read, all, DefaultResumeMax+1, probeSize)
	}
}

// TestResumeWithinBound: exactly ResumeMax events behind still resumes.
func TestResumeWithinBound(t *testing.T) {
	log, room := busyLog(100, 5)
	h := newTestHub(log, newWatermark(log.events[len(log.events)-1].Position.Commit), nil)
	h.cfg.ResumeMax = len(room)
	so, c := newTestSession(2, 7)
	h.add(so)
	h.resume(context.Background(), so, eventstore.Start)
	for range room {
		c.next(t)
		so.Sent()
	}
	if so.State() != Live || c.IsClosed() {
		t.Fatalf("state %v, closed %v; want live", so.State(), c.IsClosed())
	}
}

// TestResumeStopsWhenTheSocketGoes: a resume reading the log stops at its
// next read once its session is removed (its context is cancelled), and
// writes nothing more.
func TestResumeStopsWhenTheSocketGoes(t *testing.T) {
	log, _ := busyLog(0, 5)
	log.reading, log.gate = make(chan struct{}), make(chan struct{})
	h := newTestHub(log, newWatermark(log.events[len(log.events)-1].Position.Commit), nil)
	ended := make(chan struct{})
	h.resumeEnded = func(*Session) { close(ended) }
	so, c := newTestSession(2, 7)
	h.Start(context.Background(), so, eventstore.Start, nil, func(context.Context) (bool, error) { return true, nil })
	<-log.reading // the resume is reading
	h.Remove(so)  // the socket went
	close(log.gate)
	go func() {
		for range log.reading {
		}
	}()
	<-ended
	close(log.reading)
	if read, all, streams := log.reads(); read+all != 0 {
		t.Errorf("read %d events of %v and %d of the log after the socket went; want 0", read, streams, all)
	}
	if so.State() != Closing {
		t.Errorf("state %v; want closing", so.State())
	}
	c.none(t)
}
