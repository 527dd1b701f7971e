package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// errDatabaseDown stands for a driver's failure to reach the database; the
// injected predicate recognises it, as pgerr.Unreachable does pgx's.
var errDatabaseDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func databaseDown(err error) bool { return errors.Is(err, errDatabaseDown) }

// TestErrorMapping runs handlers that fail in each way through the error
// handler, over HTTP: the status, Retry-After and body clients see.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	const unavailableBody = `{"detail":"Service temporarily unavailable."}`
	for _, tt := range []struct {
		name       string
		err        error
		status     int
		retryAfter string
		body       string
	}{
		{"database unreachable", fmt.Errorf("list messages: %w", errDatabaseDown), 503, "2", unavailableBody},
		{"event store unreachable", fmt.Errorf("append to conversation-1: %w: %w", eventstore.ErrUnavailable, errors.New("rpc error: code = Unavailable")), 503, "2", unavailableBody},
		{"deadline ran out", fmt.Errorf("send message: %w", context.DeadlineExceeded), 503, "2", unavailableBody},
		{"classified unavailable", fmt.Errorf("%w: the read model did not catch up: %w", domain.ErrUnavailable, errDatabaseDown), 503, "2", unavailableBody},
		{"an answer is not an outage", fmt.Errorf("join: %w", domain.ErrNotMember), 403, "", `{"detail":"You are not a member of this conversation"}`},
		{"field error", domain.FieldError("text", "Too long."), 400, "", `{"text":["Too long."]}`},
		{"anything else is a 500", errors.New("cannot scan NULL into *int64"), 500, "", `{"detail":"A server error occurred."}`},
		{"a cancelled request is no outage", fmt.Errorf("list: %w", context.Canceled), 500, "", `{"detail":"A server error occurred."}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := echo.New()
			e.HTTPErrorHandler = errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), databaseDown)
			e.GET("/fail/", func(echo.Context) error { return tt.err })
			srv := httptest.NewServer(e)
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/fail/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var got, want any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			_ = json.Unmarshal([]byte(tt.body), &want)
			if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != tt.retryAfter || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("got %d, Retry-After %q, %s; want %d, Retry-After %q, %s",
					resp.StatusCode, resp.Header.Get("Retry-After"), b, tt.status, tt.retryAfter, tt.body)
			}
		})
	}
}

// TestFrameErrorMapping: a WebSocket frame that fails because the database
// is down gets the same detail as a 503.
func TestFrameErrorMapping(t *testing.T) {
	t.Parallel()
	err := unavailable(fmt.Errorf("send: %w", errDatabaseDown), databaseDown)
	if !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, errDatabaseDown) {
		t.Fatalf("unavailable(...) = %v; want domain.ErrUnavailable with the cause kept", err)
	}
	if status, body := errorResponse(err); status != 503 || fmt.Sprint(body) != fmt.Sprint(map[string]string{"detail": "Service temporarily unavailable."}) {
		t.Fatalf("errorResponse = %d %v; want 503 and the unavailable detail", status, body)
	}
	if err := unavailable(errors.New("bug"), nil); errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("unavailable(bug, nil) = %v; want it left alone", err)
	}
}
