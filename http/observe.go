package http

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
)

// Observer is told of the API's traffic (the composition root connects it
// to the metrics). Its methods must not block.
type Observer interface {
	// Request reports a finished request: route is echo's route template
	// ("/list-conversation-messages/:id/"), "unmatched" for a path the API
	// does not have.
	Request(method, route string, status int, dur time.Duration)
	// FrameIn reports a frame received from a WebSocket client.
	FrameIn()
	// FrameOut reports a frame written to a WebSocket client.
	FrameOut()
	// SocketDropped reports a WebSocket dropped as too slow for its room.
	SocketDropped()
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) Request(string, string, int, time.Duration) {}
func (nopObserver) FrameIn()                                   {}
func (nopObserver) FrameOut()                                  {}
func (nopObserver) SocketDropped()                             {}

// unmatchedRoute labels the requests no route matched, so that scanners
// probing random paths do not make a series each.
const unmatchedRoute = "unmatched"

// observe logs one line per request (at info, with its duration in
// milliseconds) and reports it to the observer. It handles the handler's
// error itself so that the status it records is the one sent.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		dur := time.Since(start)
		req, status := c.Request(), c.Response().Status
		if status == http.StatusOK && !c.Response().Committed && websocket.IsWebSocketUpgrade(req) {
			// The connection was hijacked and answered 101 past echo's
			// ResponseWriter, which still holds its initial 200.
			status = http.StatusSwitchingProtocols
		}
		route := c.Path()
		if route == "" { // echo matched nothing; a partial match keeps a route template, still a bounded set
			route = unmatchedRoute
		}
		s.observer.Request(req.Method, route, status, dur)
		if s.log.Enabled(req.Context(), slog.LevelInfo) {
			s.log.Info("request", "method", req.Method, "path", req.URL.Path, "route", route,
				"status", status, "dur_ms", float64(dur.Microseconds())/1000,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		}
		return nil
	}
}

// serveMetrics serves the Prometheus metrics when they are served on the
// API's address; when they have a listener of their own (or none), the
// API has no /metrics and answers 404.
func (s *Server) serveMetrics(c echo.Context) error {
	if s.cfg.Metrics == nil {
		return echo.ErrNotFound
	}
	s.cfg.Metrics.ServeHTTP(c.Response(), c.Request())
	return nil
}
