package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/evchat/evchat/eventstore"
)

// Store times the appends of an event store and counts their events; every
// other call passes through.
type Store struct {
	eventstore.Store
	m   *Metrics
	now func() time.Time
}

var _ eventstore.Store = (*Store)(nil)

// TimedStore wraps s so that its appends are observed.
func (m *Metrics) TimedStore(s eventstore.Store) *Store {
	return &Store{Store: s, m: m, now: time.Now}
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	start := s.now()
	res, err := s.Store.Append(ctx, stream, expected, events...)
	result := "ok"
	var wrong *eventstore.WrongExpectedVersionError
	switch {
	case errors.As(err, &wrong):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	s.m.appends.WithLabelValues(result).Inc()
	s.m.appendDuration.WithLabelValues(result).Observe(s.now().Sub(start).Seconds())
	if err == nil {
		s.m.appendBatch.Observe(float64(len(events)))
	}
	return res, err
}

// ReadStreams implements eventstore.StreamsReader with the wrapped store's
// (one call when it reads many streams at once).
func (s *Store) ReadStreams(ctx context.Context, reads []eventstore.StreamRead) ([][]eventstore.RecordedEvent, error) {
	return eventstore.ReadStreams(ctx, s.Store, reads)
}
