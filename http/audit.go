package http

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// defaultAuditPage is the number of events the audit endpoint holds at a
// time: it reads the log a page at a time and writes each event as it goes,
// so a request's memory is one page, whatever its limit.
const defaultAuditPage = 100

// maxAuditLimit bounds the events of one audit response.
const maxAuditLimit = 10000

// auditConversation lists a room's event stream in log order, to members.
// ?from=<revision> and ?limit= (default 1000, at most 10000) page through it.
//
// The answer is streamed: the status and headers go out after the first
// page is read (a log that cannot be read is still an error status); a
// later page that cannot be read aborts the response, so the client sees a
// cut connection and an unterminated array, never a shorter list that
// looks complete.
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
		limit = min(n, maxAuditLimit)
	}
	pageSize := s.cfg.AuditPage
	if pageSize <= 0 {
		pageSize = defaultAuditPage
	}
	ctx := c.Request().Context()
	stream := domain.ConversationStream(id)
	asked := min(limit, pageSize)
	events, err := s.readAudit(ctx, stream, from, asked)
	if err != nil {
		return err
	}
	// A stream's revisions count up by one, so the page after this one
	// starts at from+limit; it is linked when an event is there.
	if from <= math.MaxUint64-uint64(limit) && len(events) == asked {
		next := from + uint64(limit)
		more, err := s.readAudit(ctx, stream, next, 1)
		if err != nil {
			return err
		}
		if len(more) > 0 {
			c.Response().Header().Set("Link", "<"+s.baseURL(c)+c.Request().URL.Path+
				"?from="+strconv.FormatUint(next, 10)+"&limit="+strconv.Itoa(limit)+`>; rel="next"`)
		}
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if _, err := w.Write([]byte("[")); err != nil {
		return nil // the client went away
	}
	written := 0
	for {
		for _, e := range events {
			if written > 0 {
				if _, err := w.Write([]byte(",")); err != nil {
					return nil
				}
			}
			if err := enc.Encode(AuditEvent(e)); err != nil {
				return nil
			}
			written++
		}
		if written >= limit || len(events) < asked {
			break // the limit, or a short page: the stream's end
		}
		asked = min(pageSize, limit-written)
		next := events[len(events)-1].Revision + 1
		if events, err = s.readAudit(ctx, stream, next, asked); err != nil {
			if ctx.Err() == nil {
				s.log.Error("audit stream cut short", "stream", stream, "revision", next, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
	_, _ = w.Write([]byte("]\n"))
	return nil
}

// readAudit reads up to count events of stream from revision from; a
// stream with no events reads as none.
func (s *Server) readAudit(ctx context.Context, stream string, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	events, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, from, count)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, nil
	}
	return events, err
}
