package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/metrics"
)

// fakeLog is an event store of which only Append and ReadAll answer.
type fakeLog struct {
	eventstore.Store
	appendErr error
	events    []eventstore.RecordedEvent
}

func (f *fakeLog) Append(context.Context, string, eventstore.ExpectedRevision, ...eventstore.EventData) (eventstore.AppendResult, error) {
	return eventstore.AppendResult{}, f.appendErr
}

func (f *fakeLog) ReadAll(_ context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for _, e := range f.events {
		if from.Less(e.Position) && len(out) < count {
			out = append(out, e)
		}
	}
	return out, nil
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestResult(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{domain.ErrNotMember, "forbidden"},
		{fmt.Errorf("send: %w", domain.ErrConversationNotFound), "not_found"},
		{domain.Errorf(domain.KindRateLimited, "slow down"), "rate_limited"},
		{errors.New("boom"), "internal"},
	} {
		if got := metrics.Result(c.err); got != c.want {
			t.Errorf("Result(%v) = %q; want %q", c.err, got, c.want)
		}
	}
}

// TestTimedStore: appends are counted by result, and their events.
func TestTimedStore(t *testing.T) {
	m := metrics.New()
	log := &fakeLog{}
	s := m.TimedStore(log)
	ev := eventstore.EventData{Type: "x"}
	_, _ = s.Append(context.Background(), "s", eventstore.Any(), ev, ev, ev)
	log.appendErr = &eventstore.WrongExpectedVersionError{Stream: "s"}
	_, _ = s.Append(context.Background(), "s", eventstore.Any(), ev)
	out := scrape(t, m)
	for _, want := range []string{
		`evchat_eventstore_appends_total{result="ok"} 1`,
		`evchat_eventstore_appends_total{result="conflict"} 1`,
		`evchat_eventstore_append_batch_size_sum 3`,
		`evchat_eventstore_append_batch_size_count 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// TestLag: the events past the projection's position, and the age of the
// oldest of them.
func TestLag(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	for i := uint64(1); i <= 5; i++ {
		log.events = append(log.events, eventstore.RecordedEvent{
			Position: eventstore.Position{Commit: i, Prepare: i}, Created: now.Add(time.Duration(i-10) * time.Second),
		})
	}
	for _, c := range []struct {
		at         uint64
		events     string
		lagSeconds string
	}{{2, "3", "7"}, {5, "0", "0"}} {
		m := metrics.New()
		m.Register(metrics.NewLag("chat", func() eventstore.Position { return eventstore.Position{Commit: c.at, Prepare: c.at} }, log,
			func() time.Time { return now }))
		out := scrape(t, m)
		for _, want := range []string{
			`evchat_projection_lag_events{projection="chat"} ` + c.events,
			`evchat_projection_lag_seconds{projection="chat"} ` + c.lagSeconds,
			`evchat_projection_lag_up{projection="chat"} 1`,
		} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("at %d: scrape lacks %s", c.at, want)
			}
		}
	}
}
