package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evchat/evchat/internal/pgerr"
	"github.com/evchat/evchat/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestUnreachableKinds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"starting up or shutting down", fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"wrong password", &pgconn.PgError{Code: "28P01"}, false},
		{"query cancelled by a statement timeout", &pgconn.PgError{Code: "57014"}, false},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), true},
		{"caller gave up", fmt.Errorf("query: %w", context.Canceled), false},
		{"no rows", pgx.ErrNoRows, false},
		{"network", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, true},
		{"closed connection", fmt.Errorf("exec: %w", pgconn.ErrConnClosed), true},
		{"some other error", errors.New("cannot scan NULL into *int64"), false},
	} {
		if got := pgerr.Unreachable(tt.err); got != tt.want {
			t.Errorf("%s: Unreachable(%v) = %v; want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// The errors a real server gives: a refused connection, and a connection
// the server terminates (as it does to every client when it shuts down).
func TestUnreachableFromAServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	_, err = pgx.Connect(ctx, "postgres://u:p@"+addr+"/db?connect_timeout=5")
	if err == nil || !pgerr.Unreachable(err) {
		t.Fatalf("connect to a closed port: %v; want an unreachable error", err)
	}

	url := pgtest.NewDatabase(t)
	victim, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close(context.Background())
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, victim.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	_, err = victim.Exec(ctx, `SELECT 1`)
	if err == nil || !pgerr.Unreachable(err) {
		t.Fatalf("query on a terminated connection: %v; want an unreachable error", err)
	}
	_, err = victim.Exec(ctx, `SELECT 1`)
	if err == nil || !pgerr.Unreachable(err) {
		t.Fatalf("query on the closed connection after it: %v; want an unreachable error", err)
	}
	_, err = admin.Exec(ctx, `SELECT 1/0`)
	if err == nil || pgerr.Unreachable(err) {
		t.Fatalf("division by zero: %v; want an answer, not unreachable", err)
	}
}
