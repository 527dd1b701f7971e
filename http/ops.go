package http

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// auditEvent is one event of an audit trail.
type auditEvent struct {
	ID       string          `json:"id"`
	Stream   string          `json:"stream"`
	Revision uint64          `json:"revision"`
	Position string          `json:"position"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	Time     string          `json:"time"`
}

// AuditEvent converts a recorded event for audit output, redacting secrets.
func AuditEvent(e eventstore.RecordedEvent) auditEvent {
	data := json.RawMessage(e.Data)
	if e.Type == domain.TypeUserRegistered {
		var m map[string]any
		if json.Unmarshal(e.Data, &m) == nil {
			m["password_hash"] = "[redacted]"
			data, _ = json.Marshal(m)
		}
	}
	md := json.RawMessage(e.Metadata)
	if len(md) == 0 {
		md = json.RawMessage("{}")
	}
	return auditEvent{
		ID: e.ID.String(), Stream: e.Stream, Revision: e.Revision, Position: e.Position.String(),
		Type: e.Type, Data: data, Metadata: md, Time: formatTime(e.Created),
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports ready when the database and the event store answer and the
// read model is not lagging the log by more than ReadyLag, or lags because
// an operator paused its projection. The search index is not checked: it
// may backfill for a long time, and chat works without it.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	if err := s.cfg.Database.Ping(ctx); err != nil {
		checks["database"], ok = "unreachable", false
	} else {
		checks["database"] = "ok"
	}
	head, err := s.store.Head(ctx)
	if err != nil {
		checks["event_store"], ok = "unreachable", false
	} else {
		checks["event_store"] = "ok"
	}
	lag := s.hub.rt.ProjectionLag(head)
	checks["projection"] = "ok"
	if err == nil && lag > s.cfg.ReadyLag {
		checks["projection"], ok = "lagging "+lag.Round(time.Millisecond).String(), false
		// A projection an operator paused lags on purpose: taking the
		// process out of rotation would not help, and would take every
		// process out at once.
		if s.cfg.ChatPaused != nil {
			if paused, perr := s.cfg.ChatPaused(ctx); perr == nil && paused {
				checks["projection"], ok = "paused", checks["database"] == "ok"
			}
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, map[string]any{"ready": ok, "checks": checks, "head": head.String(), "projected": s.wm.Position().String()})
}
