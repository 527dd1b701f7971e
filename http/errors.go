// Package http is the REST and WebSocket API: echo routes and handlers, JWT
// auth, attachments, and the one table that turns error kinds into statuses.
package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// statusOf is the one error-kind-to-status table.
var statusOf = map[domain.Kind]int{
	domain.KindInvalid:      http.StatusBadRequest,
	domain.KindUnauthorized: http.StatusUnauthorized,
	domain.KindForbidden:    http.StatusForbidden,
	domain.KindNotFound:     http.StatusNotFound,
	domain.KindConflict:     http.StatusConflict,
	domain.KindTooLarge:     http.StatusRequestEntityTooLarge,
	domain.KindUnsupported:  http.StatusUnsupportedMediaType,
	domain.KindRateLimited:  http.StatusTooManyRequests,
	domain.KindUnavailable:  http.StatusServiceUnavailable,
	domain.KindInternal:     http.StatusInternalServerError,
}

// unavailableRetryAfter is the Retry-After (seconds) of a 503: a database
// restart or a projector catching up usually takes about this long.
const unavailableRetryAfter = 2

// rateLimited is a 429 that says when to come back.
type rateLimited struct {
	retryAfter int // seconds
}

func (r *rateLimited) Error() string { return "Request was throttled." }

// throttled turns auth's refusal into the API's 429.
func throttled(err error) error {
	var t *auth.Throttled
	if errors.As(err, &t) {
		return &rateLimited{retryAfter: max(1, int(t.RetryAfter.Seconds()+0.999))}
	}
	return err
}

// unavailable classifies a failure to reach a dependency as
// domain.ErrUnavailable (503), keeping err as the cause for the log: the
// event store's eventstore.ErrUnavailable, a deadline that ran out, and
// whatever unreachable (the database's predicate) reports. An error that
// is already classified stays as it is.
func unavailable(err error, unreachable func(error) bool) error {
	var de *domain.Error
	switch {
	case err == nil || errors.As(err, &de):
		return err
	case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded),
		unreachable != nil && unreachable(err):
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return err
}

// unavailableLogEvery spaces the warnings of an outage: each refused
// request is logged, but at warning level only one in this long.
const unavailableLogEvery = time.Second

func errorHandler(log *slog.Logger, unreachable func(error) bool) echo.HTTPErrorHandler {
	var warned atomic.Int64 // unix nanoseconds of the last outage warning
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		err = throttled(unavailable(err, unreachable))
		status, body := errorResponse(err)
		switch status {
		case http.StatusInternalServerError:
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
		case http.StatusServiceUnavailable:
			level := slog.LevelDebug
			if now, last := time.Now().UnixNano(), warned.Load(); now-last >= int64(unavailableLogEvery) && warned.CompareAndSwap(last, now) {
				level = slog.LevelWarn
			}
			log.Log(c.Request().Context(), level, "request refused: a dependency is unavailable", "method", c.Request().Method,
				"path", c.Path(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
		}
		h := c.Response().Header()
		if status == http.StatusUnauthorized {
			h.Set("WWW-Authenticate", `Bearer realm="api"`)
		}
		var rl *rateLimited
		if errors.As(err, &rl) {
			h.Set("Retry-After", strconv.Itoa(rl.retryAfter))
		}
		if status == http.StatusServiceUnavailable {
			h.Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(status)
		} else {
			err = c.JSON(status, body)
		}
		if err != nil {
			log.Debug("write error response", "err", err)
		}
	}
}

// errorResponse returns the status and the DRF-shaped body of err. Only
// classified errors reach clients with their message; anything else is a
// generic 500.
func errorResponse(err error) (int, any) {
	var de *domain.Error
	var he *echo.HTTPError
	var rl *rateLimited
	switch {
	case errors.As(err, &rl):
		return http.StatusTooManyRequests, map[string]string{"detail": "Request was throttled. Expected available in " + strconv.Itoa(rl.retryAfter) + " seconds."}
	case errors.As(err, &de):
		status := statusOf[de.Kind]
		if status == http.StatusInternalServerError {
			return status, map[string]string{"detail": "A server error occurred."}
		}
		if len(de.Fields) > 0 {
			return status, de.Fields
		}
		return status, map[string]string{"detail": de.Message}
	case errors.As(err, &he):
		if he.Code >= 500 {
			return he.Code, map[string]string{"detail": "A server error occurred."}
		}
		return he.Code, map[string]string{"detail": echoMessage(he)}
	}
	return http.StatusInternalServerError, map[string]string{"detail": "A server error occurred."}
}

func echoMessage(he *echo.HTTPError) string {
	switch he.Code {
	case http.StatusNotFound:
		return "Not found."
	case http.StatusMethodNotAllowed:
		return "Method not allowed."
	case http.StatusRequestEntityTooLarge:
		return "Request body is too large."
	case http.StatusUnsupportedMediaType:
		return "Unsupported media type in request."
	}
	if s, ok := he.Message.(string); ok {
		return s
	}
	return http.StatusText(he.Code)
}

// Errors of the HTTP layer itself.
var (
	errNotAuthenticated = domain.Errorf(domain.KindUnauthorized, "Authentication credentials were not provided.")
	errBadCredentials   = domain.Errorf(domain.KindUnauthorized, "Invalid username or password")
	errTooLarge         = domain.Errorf(domain.KindTooLarge, "Request body is too large.")
)
