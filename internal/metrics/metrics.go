// Package metrics exposes the server's Prometheus series: HTTP requests by
// route and status, commands by result, event appends, projection progress
// and lag, WebSocket traffic, and the Go runtime and process. The packages
// it observes know nothing of Prometheus: each offers a hook (an observer
// interface or a callback) and the composition root connects it here.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/evchat/evchat/domain"
)

// namespace prefixes every series of the server's own.
const namespace = "evchat"

// latencyBuckets (seconds) span a cached read (a millisecond) to a write
// that waited out the read-your-writes bound (seconds).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics holds the series of one server process, in a registry of its
// own (no global state: tests run several servers in one process).
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	appends         *prometheus.CounterVec
	appendDuration  *prometheus.HistogramVec
	appendBatch     prometheus.Histogram
	projected       *prometheus.CounterVec
	framesIn        prometheus.Counter
	framesOut       prometheus.Counter
	dropped         prometheus.Counter
}

// New returns the server's metrics with the Go runtime and process
// collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests by method, route template and status (429s are the rate-limit refusals).",
		}, []string{"method", "route", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help: "HTTP request latency by method and route template.", Buckets: latencyBuckets,
		}, []string{"method", "route"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "commands_total",
			Help: "Commands by name and result: ok or the error kind.",
		}, []string{"command", "result"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "command_duration_seconds",
			Help: "Command latency by name.", Buckets: latencyBuckets,
		}, []string{"command"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "eventstore_appends_total",
			Help: "Event store appends by result: ok, conflict (wrong expected revision) or error.",
		}, []string{"result"}),
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "eventstore_append_duration_seconds",
			Help: "Event store append latency by result.", Buckets: latencyBuckets,
		}, []string{"result"}),
		appendBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "eventstore_append_batch_size",
			Help: "Events per append.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		projected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "projection_events_total",
			Help: "Events this process applied to the read model, by projection.",
		}, []string{"projection"}),
		framesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "websocket_frames_in_total", Help: "WebSocket frames received from clients.",
		}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "websocket_frames_out_total", Help: "WebSocket frames written to clients.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "websocket_slow_dropped_total",
			Help: "WebSockets closed because they could not keep up with their room.",
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.requestDuration, m.commands, m.commandDuration,
		m.appends, m.appendDuration, m.appendBatch, m.projected,
		m.framesIn, m.framesOut, m.dropped,
	)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds more collectors (the composition root's gauges).
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// Request records an HTTP request (http.Observer). route is the route
// template ("/list-conversation-messages/:id/"), never the raw path, so the
// series stay few.
func (m *Metrics) Request(method, route string, status int, dur time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(method, route).Observe(dur.Seconds())
}

// FrameIn records a frame from a WebSocket client (http.Observer).
func (m *Metrics) FrameIn() { m.framesIn.Inc() }

// FrameOut records a frame written to a WebSocket client (http.Observer).
func (m *Metrics) FrameOut() { m.framesOut.Inc() }

// SocketDropped records a slow WebSocket dropped (http.Observer).
func (m *Metrics) SocketDropped() { m.dropped.Inc() }

// Command records a command's result (commands.Config.Observe).
func (m *Metrics) Command(name string, err error, dur time.Duration) {
	m.commands.WithLabelValues(name, Result(err)).Inc()
	m.commandDuration.WithLabelValues(name).Observe(dur.Seconds())
}

// Projected records events a projection applied.
func (m *Metrics) Projected(projection string, events int) {
	m.projected.WithLabelValues(projection).Add(float64(events))
}

// Result names an error for a result label: "ok" for nil, otherwise its
// domain kind.
func Result(err error) string {
	if err == nil {
		return "ok"
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		return "internal"
	}
	return kindNames[de.Kind]
}

// kindNames label the domain's error kinds.
var kindNames = map[domain.Kind]string{
	domain.KindInternal:     "internal",
	domain.KindInvalid:      "invalid",
	domain.KindUnauthorized: "unauthorized",
	domain.KindForbidden:    "forbidden",
	domain.KindNotFound:     "not_found",
	domain.KindConflict:     "conflict",
	domain.KindTooLarge:     "too_large",
	domain.KindUnsupported:  "unsupported",
	domain.KindRateLimited:  "rate_limited",
	domain.KindUnavailable:  "unavailable",
}
