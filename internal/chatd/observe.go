package chatd

import (
	"errors"
	"fmt"
	"net"
	stdhttp "net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/evchat/evchat/internal/metrics"
	"github.com/evchat/evchat/projections"
)

// listen binds the API's address and, when set, the metrics address.
func (m *Main) listen() error {
	var err error
	if m.ln, err = net.Listen("tcp", m.cfg.Addr); err != nil {
		return listenError(m.cfg.Addr, "-addr/CHAT_ADDR", err)
	}
	if m.cfg.MetricsAddr != "" {
		if m.metricsLn, err = net.Listen("tcp", m.cfg.MetricsAddr); err != nil {
			return listenError(m.cfg.MetricsAddr, "-metrics-addr/CHAT_METRICS_ADDR", err)
		}
	}
	return nil
}

// listenError explains a failure to bind addr, with a hint when another
// process holds it.
func listenError(addr, setting string, err error) error {
	if isAddrInUse(err) {
		return fmt.Errorf("listen on %s: %w (another process uses this address: stop it, or choose another with %s)", addr, err, setting)
	}
	return fmt.Errorf("listen on %s: %w", addr, err)
}

// apiMetrics is the metrics handler the API serves at /metrics: none when
// the metrics have an address of their own.
func (m *Main) apiMetrics() stdhttp.Handler {
	if m.cfg.MetricsAddr != "" {
		return nil
	}
	return m.metrics.Handler()
}

// registerGauges adds the series read at scrape time: open sockets and the
// chat projection's lag behind the log.
func (m *Main) registerGauges() {
	m.metrics.Register(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "evchat_websocket_open", Help: "WebSockets of this process that hear their room.",
		}, func() float64 { return float64(m.api.OpenSockets()) }),
		metrics.NewLag(projections.ChatName, m.wm.Position, m.store, nil),
	)
}

// serveMetrics serves the metrics on their own listener, when one is
// bound; its end is reported on done.
func (m *Main) serveMetrics(done chan<- error) {
	if m.metricsLn == nil {
		return
	}
	mux := stdhttp.NewServeMux()
	mux.Handle("/metrics", m.metrics.Handler())
	m.metricsSrv = &stdhttp.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		err := m.metricsSrv.Serve(m.metricsLn)
		if errors.Is(err, stdhttp.ErrServerClosed) {
			return
		}
		done <- fmt.Errorf("metrics listener: %w", err)
	}()
	m.log.Info("serving metrics", "url", "http://"+m.metricsLn.Addr().String()+"/metrics")
}

// MetricsAddr is the address of the metrics listener; empty when the
// metrics are served on the API's address.
func (m *Main) MetricsAddr() string {
	if m.metricsLn == nil {
		return ""
	}
	return m.metricsLn.Addr().String()
}
