package http

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

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
// ?from= (a revision, or an RFC 3339 time: the events recorded from then
// on), ?to= (an RFC 3339 time: only events recorded before it) and
// ?limit= (default 1000, at most 10000) select and page through it.
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
	pageSize := s.cfg.AuditPage
	if pageSize <= 0 {
		pageSize = defaultAuditPage
	}
	ctx := c.Request().Context()
	cur := &auditCursor{s: s, stream: domain.ConversationStream(id), page: pageSize}
	limit := 1000
	if v := c.QueryParam("from"); v != "" {
		if cur.rev, err = strconv.ParseUint(v, 10, 64); err != nil {
			if cur.from, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return domain.FieldError("from", "A valid revision or RFC 3339 time is required.")
			}
		}
	}
	if v := c.QueryParam("to"); v != "" {
		if cur.to, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return domain.FieldError("to", "A valid RFC 3339 time is required.")
		}
		if !cur.from.IsZero() && !cur.to.After(cur.from) {
			return domain.FieldError("to", "Ensure this time is after from.")
		}
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return domain.FieldError("limit", "A valid positive integer is required.")
		}
		limit = min(n, maxAuditLimit)
	}
	first, ok, err := cur.next(ctx)
	if err != nil {
		return err
	}
	// A stream's revisions count up by one, and past the first event
	// nothing is skipped but what follows to, so the page after this one
	// starts limit revisions after the first; it is linked when an event
	// in range is there.
	if ok && first.Revision <= math.MaxUint64-uint64(limit) {
		next := first.Revision + uint64(limit)
		more, err := s.readAudit(ctx, cur.stream, next, 1)
		if err != nil {
			return err
		}
		if len(more) > 0 && cur.inRange(more[0]) {
			q := url.Values{"from": {strconv.FormatUint(next, 10)}, "limit": {strconv.Itoa(limit)}}
			if !cur.to.IsZero() {
				q.Set("to", c.QueryParam("to"))
			}
			c.Response().Header().Set("Link", "<"+s.baseURL(c)+c.Request().URL.Path+"?"+q.Encode()+`>; rel="next"`)
		}
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if _, err := w.Write([]byte("[")); err != nil {
		return nil // the client went away
	}
	for written := 0; ok && written < limit; written++ {
		if written > 0 {
			if _, err := w.Write([]byte(",")); err != nil {
				return nil
			}
		}
		if err := enc.Encode(AuditEvent(first)); err != nil {
			return nil
		}
		if written+1 == limit {
			break
		}
		if first, ok, err = cur.next(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.Error("audit stream cut short", "stream", cur.stream, "revision", cur.rev, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
	_, _ = w.Write([]byte("]\n"))
	return nil
}

// auditCursor reads a stream's events a page at a time from revision rev,
// skipping those recorded before from and ending at the first recorded at
// or after to (a zero time: no bound). Events of one stream are recorded
// in revision order, so their times rise with their revisions.
type auditCursor struct {
	s        *Server
	stream   string
	rev      uint64
	from, to time.Time
	page     int
	buf      []eventstore.RecordedEvent
	done     bool
}

func (a *auditCursor) inRange(e eventstore.RecordedEvent) bool {
	return a.to.IsZero() || e.Created.Before(a.to)
}

// next returns the next event in range; ok is false at the end.
func (a *auditCursor) next(ctx context.Context) (e eventstore.RecordedEvent, ok bool, err error) {
	for len(a.buf) == 0 {
		if a.done {
			return e, false, nil
		}
		events, err := a.s.readAudit(ctx, a.stream, a.rev, a.page)
		if err != nil {
			return e, false, err
		}
		a.done = len(events) < a.page
		if len(events) > 0 {
			a.rev = events[len(events)-1].Revision + 1
		}
		for _, ev := range events {
			if !a.from.IsZero() && ev.Created.Before(a.from) {
				continue
			}
			if !a.inRange(ev) {
				a.done = true
				break
			}
			a.buf = append(a.buf, ev)
		}
	}
	e, a.buf = a.buf[0], a.buf[1:]
	return e, true, nil
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
