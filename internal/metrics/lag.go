package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/evchat/evchat/eventstore"
)

// LagScanLimit bounds the events a scrape reads past a projection's
// position to count its lag: a lag of LagScanLimit means "at least".
const LagScanLimit = 1000

// lagScrapeTimeout bounds the log read of one scrape.
const lagScrapeTimeout = 2 * time.Second

// Lag is a collector of one projection's lag behind the log, measured at
// each scrape: the events the log holds past the position the projection
// has reached (up to LagScanLimit), and the age of the oldest of them
// (zero when caught up). Positions are opaque and differ between event
// stores, so the events are counted by reading them, not by subtracting.
type Lag struct {
	projection string
	position   func() eventstore.Position
	log        interface {
		ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error)
	}
	now    func() time.Time
	events *prometheus.Desc
	secs   *prometheus.Desc
	errs   *prometheus.Desc
}

// NewLag returns the lag collector of projection, which has reached
// position() in log.
func NewLag(projection string, position func() eventstore.Position, log eventstore.Store, now func() time.Time) *Lag {
	if now == nil {
		now = time.Now
	}
	labels := prometheus.Labels{"projection": projection}
	return &Lag{
		projection: projection, position: position, log: log, now: now,
		events: prometheus.NewDesc(namespace+"_projection_lag_events",
			"Events in the log past the projection's position (counted up to 1000).", nil, labels),
		secs: prometheus.NewDesc(namespace+"_projection_lag_seconds",
			"Age of the oldest event the projection has not applied; 0 when caught up.", nil, labels),
		errs: prometheus.NewDesc(namespace+"_projection_lag_up",
			"1 when the log could be read to measure the lag, 0 when not.", nil, labels),
	}
}

// Describe implements prometheus.Collector.
func (l *Lag) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.events
	ch <- l.secs
	ch <- l.errs
}

// Collect implements prometheus.Collector.
func (l *Lag) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), lagScrapeTimeout)
	defer cancel()
	evs, err := l.log.ReadAll(ctx, l.position(), LagScanLimit)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(l.errs, prometheus.GaugeValue, 0)
		return
	}
	age := 0.0
	if len(evs) > 0 {
		age = max(0, l.now().Sub(evs[0].Created).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(l.errs, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(l.events, prometheus.GaugeValue, float64(len(evs)))
	ch <- prometheus.MustNewConstMetric(l.secs, prometheus.GaugeValue, age)
}
