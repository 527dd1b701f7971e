package http

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

type seenRequest struct {
	method, route string
	status        int
}

type recordingObserver struct {
	nopObserver
	seen []seenRequest
}

func (o *recordingObserver) Request(method, route string, status int, _ time.Duration) {
	o.seen = append(o.seen, seenRequest{method, route, status})
}

// TestObserveLogsAndReports: each request is one info line with its
// duration in milliseconds, and is reported under its route template; a
// path no route matches is reported as unmatched.
func TestObserveLogsAndReports(t *testing.T) {
	var logs bytes.Buffer
	obs := &recordingObserver{}
	s := &Server{log: slog.New(slog.NewJSONHandler(&logs, nil)), observer: obs}
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(s.log, nil)
	e.Use(s.observe)
	e.GET("/things/:id/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })

	for _, p := range []string{"/things/42/", "/nowhere/"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	want := []seenRequest{{"GET", "/things/:id/", 204}, {"GET", unmatchedRoute, 404}}
	if len(obs.seen) != len(want) || obs.seen[0] != want[0] || obs.seen[1] != want[1] {
		t.Fatalf("observed %v; want %v", obs.seen, want)
	}
	dec := json.NewDecoder(&logs)
	for i := range want {
		var line struct {
			Level, Msg, Path string
			Status           int
			DurMS            *float64 `json:"dur_ms"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("log line %d: %v", i, err)
		}
		if line.Level != "INFO" || line.Msg != "request" || line.Status != want[i].status || line.DurMS == nil || *line.DurMS < 0 {
			t.Errorf("log line %d = %+v; want an info request line with status %d and dur_ms", i, line, want[i].status)
		}
	}
}
