package http

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// errBodyTooSlow answers a request whose body did not arrive in time.
var errBodyTooSlow = echo.NewHTTPError(http.StatusRequestTimeout, "The request body arrived too slowly.")

// slowBodies bounds how long a request body may take: its first bytes
// within BodyTimeout, and from then on at least BodyMinRate bytes a second
// on average (the body's n-th byte is due by BodyTimeout + n/BodyMinRate
// after the request began). A large upload at any real speed is never cut,
// while a connection that trickles a body is answered 408 and closed. The
// bound is a read deadline on the connection, so a read blocked on a
// silent client ends too.
func (s *Server) slowBodies(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.cfg.BodyTimeout <= 0 || s.cfg.BodyMinRate <= 0 || r.Body == nil || r.Body == http.NoBody ||
			(r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
			return next(c)
		}
		b := &deadlineBody{
			ReadCloser: r.Body, rc: http.NewResponseController(c.Response().Writer),
			start: time.Now(), grace: s.cfg.BodyTimeout, rate: float64(s.cfg.BodyMinRate),
			res: c.Response(),
		}
		// The deadline holds from now on, not only while a handler reads:
		// a body refused unread (401, 429) is drained by the server after
		// the answer, and a trickle must not hold that drain open either.
		if err := b.setDeadline(); err != nil {
			return err
		}
		r.Body = b
		return next(c)
	}
}

// deadlineBody sets the connection's read deadline before each read of a
// body from the bytes read so far, and clears it at the body's end (the
// server then reads the connection in the background, and a deadline left
// behind would cancel the request).
type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  float64 // bytes a second
	n     int64
	res   *echo.Response
	done  bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	if err := b.setDeadline(); err != nil {
		return 0, err
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// What is left of the body cannot be told from a next request:
		// the connection goes once the answer is written.
		b.res.Header().Set(echo.HeaderConnection, "close")
		return n, errBodyTooSlow
	case err != nil:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// setDeadline sets the read deadline of the body's next byte.
func (b *deadlineBody) setDeadline() error {
	due := b.start.Add(b.grace + time.Duration(float64(b.n)/b.rate*float64(time.Second)))
	if err := b.rc.SetReadDeadline(due); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}
