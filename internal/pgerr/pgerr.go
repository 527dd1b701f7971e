// Package pgerr tells, of an error from pgx, whether PostgreSQL could not be
// reached (the server is down, restarting or refusing connections, or the
// connection broke), as opposed to an answer from a working server. The
// former is worth retrying: callers answer it with "unavailable", not as a
// failure of their own.
package pgerr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err is a failure to reach PostgreSQL: a
// connection that could not be made or broke, a server shutting down or
// starting up (SQLSTATE 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
// cannot_connect_now), a connection exception (class 08), a server out of
// connection slots (53300), or a deadline that ran out while waiting for
// it. A cancelled context is not: the caller gave up. Errors the server
// answered with (constraint violations, bad SQL, wrong passwords) are not.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, pgconn.ErrConnClosed), pgconn.Timeout(err),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}
