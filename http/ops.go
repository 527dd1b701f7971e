package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
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

// auditConversation lists a room's event stream in log order, to members.
// ?from=<revision> and ?limit= (default 1000, at most 10000) page through it.
func (s *Server) auditConversation(c echo.Context) error {
	id, err := pathID(c, domain.ErrConversationNotFound)
	if err != nil {
		return err
	}
	if err := s.checkMember(c, id); err != nil {
		return err
	}
	from, limit := uint64(0), 1000
	if v := c.QueryParam("from"); v != "" {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			return domain.FieldError("from", "A valid revision is required.")
		}
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return domain.FieldError("limit", "A valid positive integer is required.")
		}
		limit = min(n, 10000)
	}
	events, err := s.store.ReadStream(c.Request().Context(), domain.ConversationStream(id), eventstore.Forwards, from, limit)
	if err != nil {
		return err
	}
	out := make([]auditEvent, len(events))
	for i, e := range events {
		out[i] = AuditEvent(e)
	}
	if len(events) == limit {
		next := events[len(events)-1].Revision + 1
		c.Response().Header().Set("Link", "<"+s.baseURL(c)+c.Request().URL.Path+
			"?from="+strconv.FormatUint(next, 10)+"&limit="+strconv.Itoa(limit)+`>; rel="next"`)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports ready when the database and the event store answer and the
// read model is not lagging the log by more than ReadyLag.
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
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, map[string]any{"ready": ok, "checks": checks, "head": head.String(), "projected": s.wm.Position().String()})
}
