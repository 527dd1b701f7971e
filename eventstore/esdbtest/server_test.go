package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/evchat/evchat/eventstore/esdbtest"
)

// These tests speak to the double with the real client library, so they
// pin down the wire behaviour the adapter relies on.

func client(t *testing.T, srv *esdbtest.Server) *kurrent.Client {
	t.Helper()
	cfg, err := kurrent.ParseConnectionString(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = kurrent.NoopLogging()
	c, err := kurrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func event(typ string) kurrent.EventData {
	return kurrent.EventData{EventID: uuid.New(), EventType: typ, ContentType: kurrent.ContentTypeJson, Data: []byte(`{}`), Metadata: []byte(`{"m":1}`)}
}

func appendTo(t *testing.T, c *kurrent.Client, stream string, exp kurrent.ExpectedRevision, evs ...kurrent.EventData) *kurrent.WriteResult {
	t.Helper()
	wr, err := c.AppendToStream(ctxFor(t), stream, kurrent.AppendToStreamOptions{ExpectedRevision: exp}, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return wr
}

// collect returns a function that drains a read: collect(t)(c.ReadAll(...)).
func collect(t *testing.T) func(*kurrent.ReadStream, error) []*kurrent.RecordedEvent {
	return func(rs *kurrent.ReadStream, err error) []*kurrent.RecordedEvent {
		t.Helper()
		return drain(t, rs, err)
	}
}

func drain(t *testing.T, rs *kurrent.ReadStream, err error) []*kurrent.RecordedEvent {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []*kurrent.RecordedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.OriginalEvent())
	}
}

func TestAppendAnswers(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	c := client(t, srv)
	ctx := ctxFor(t)
	a, b := event("a"), event("b")
	wr := appendTo(t, c, "s", kurrent.NoStream{}, a, b)
	if wr.NextExpectedVersion != 1 || wr.CommitPosition == 0 || wr.CommitPosition != wr.PreparePosition {
		t.Errorf("write result = %+v; want revision 1 and the last event's position", wr)
	}
	evs := collect(t)(c.ReadStream(ctx, "s", kurrent.ReadStreamOptions{}, 10))
	if len(evs) != 2 || evs[1].Position.Commit != wr.CommitPosition {
		t.Fatalf("stream = %+v; want 2 events, the last at %d", evs, wr.CommitPosition)
	}

	for _, tc := range []struct {
		stream string
		exp    kurrent.ExpectedRevision
		got    string
	}{
		{"s", kurrent.Revision(5), "'1'"},
		{"s", kurrent.NoStream{}, "'1'"},
		{"missing", kurrent.StreamExists{}, "'no_stream'"},
		{"missing", kurrent.Revision(0), "'no_stream'"},
	} {
		_, err := c.AppendToStream(ctx, tc.stream, kurrent.AppendToStreamOptions{ExpectedRevision: tc.exp}, event("c"))
		var e *kurrent.Error
		if !errors.As(err, &e) || e.Code() != kurrent.ErrorCodeWrongExpectedVersion || !strings.Contains(err.Error(), "but got "+tc.got) {
			t.Errorf("append to %s expecting %v: %v; want wrong expected version, got %s", tc.stream, tc.exp, err, tc.got)
		}
	}

	// Idempotent retry: same ids, same expectation, the original answer.
	again := appendTo(t, c, "s", kurrent.NoStream{}, a, b)
	if *again != *wr {
		t.Errorf("retry = %+v; want %+v", again, wr)
	}
	if n := len(collect(t)(c.ReadStream(ctx, "s", kurrent.ReadStreamOptions{}, 10))); n != 2 {
		t.Errorf("stream has %d events after the retry; want 2", n)
	}
}

func TestRecordedEvents(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	c := client(t, srv)
	e := event("thing.happened")
	appendTo(t, c, "rec", kurrent.Any{}, e)
	evs := collect(t)(c.ReadStream(ctxFor(t), "rec", kurrent.ReadStreamOptions{}, 1))
	if len(evs) != 1 {
		t.Fatalf("read %d events", len(evs))
	}
	got := evs[0]
	if got.EventID != e.EventID || got.EventType != e.EventType || got.StreamID != "rec" ||
		got.ContentType != "application/json" || string(got.UserMetadata) != `{"m":1}` {
		t.Errorf("recorded = %+v; want %+v", got, e)
	}
	if d := time.Since(got.CreatedDate); d < 0 || d > time.Minute {
		t.Errorf("created = %v; want about now", got.CreatedDate)
	}
}

func TestAllReads(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	c := client(t, srv)
	ctx := ctxFor(t)
	for range 3 {
		appendTo(t, c, "all-"+uuid.NewString()[:4], kurrent.NoStream{}, event("x"))
	}
	all := collect(t)(c.ReadAll(ctx, kurrent.ReadAllOptions{}, 100))
	if len(all) != 5 || !strings.HasPrefix(all[0].StreamID, "$") {
		t.Fatalf("$all = %d events starting in %s; want 2 system events, then 3", len(all), all[0].StreamID)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Position.Commit <= all[i-1].Position.Commit {
			t.Errorf("positions not increasing at %d", i)
		}
	}
	// Forwards is inclusive of the position; backwards exclusive.
	fwd := collect(t)(c.ReadAll(ctx, kurrent.ReadAllOptions{From: all[3].Position}, 10))
	if len(fwd) != 2 || fwd[0].EventID != all[3].EventID {
		t.Errorf("forwards from event 3 = %d events; want 2 starting with it", len(fwd))
	}
	back := collect(t)(c.ReadAll(ctx, kurrent.ReadAllOptions{Direction: kurrent.Backwards, From: all[3].Position}, 10))
	if len(back) != 3 || back[0].EventID != all[2].EventID {
		t.Errorf("backwards from event 3 = %d events; want 3 starting with event 2", len(back))
	}
	_, err := c.ReadStream(ctx, "missing", kurrent.ReadStreamOptions{}, 1)
	if err != nil {
		t.Fatalf("ReadStream itself: %v; want the error from Recv", err)
	}
	rs, _ := c.ReadStream(ctx, "missing", kurrent.ReadStreamOptions{}, 1)
	defer rs.Close()
	var e *kurrent.Error
	if _, err := rs.Recv(); !errors.As(err, &e) || e.Code() != kurrent.ErrorCodeResourceNotFound {
		t.Errorf("Recv of a missing stream: %v; want ResourceNotFound", err)
	}
}

func TestSubscription(t *testing.T) {
	for _, noCaughtUp := range []bool{false, true} {
		srv := esdbtest.Start(t, esdbtest.Options{NoCaughtUp: noCaughtUp})
		c := client(t, srv)
		for range 3 {
			appendTo(t, c, "sub-"+uuid.NewString()[:4], kurrent.NoStream{}, event("x"))
		}
		all := collect(t)(c.ReadAll(ctxFor(t), kurrent.ReadAllOptions{}, 100))
		sub, err := c.SubscribeToAll(ctxFor(t), kurrent.SubscribeToAllOptions{From: all[2].Position})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		var got []string
		for range 2 {
			e := sub.Recv()
			if e.EventAppeared == nil {
				t.Fatalf("got %+v; want an event", e)
			}
			got = append(got, e.EventAppeared.OriginalEvent().EventID.String())
		}
		if got[0] != all[3].EventID.String() || got[1] != all[4].EventID.String() {
			t.Errorf("subscription from event 2 started with %v; want events 3 and 4 (exclusive)", got)
		}
		live := event("live")
		appendTo(t, c, "sub-live", kurrent.Any{}, live)
		e := sub.Recv()
		if !noCaughtUp {
			if e.CaughtUp == nil {
				t.Fatalf("got %+v; want caught up", e)
			}
			e = sub.Recv()
		}
		if e.EventAppeared == nil || e.EventAppeared.OriginalEvent().EventID != live.EventID {
			t.Errorf("got %+v; want the live event", e)
		}
	}
}

func TestStopResume(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	c := client(t, srv)
	appendTo(t, c, "keep", kurrent.NoStream{}, event("x"))
	addr := srv.Addr()
	srv.Stop()
	if _, err := c.AppendToStream(ctxFor(t), "keep", kurrent.AppendToStreamOptions{}, event("y")); err == nil {
		t.Error("append to a stopped server succeeded")
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Errorf("resumed on %s; want %s", srv.Addr(), addr)
	}
	c2 := client(t, srv)
	if n := len(collect(t)(c2.ReadStream(ctxFor(t), "keep", kurrent.ReadStreamOptions{}, 10))); n != 1 {
		t.Errorf("stream after resume has %d events; want 1", n)
	}
}
