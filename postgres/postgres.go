// Package postgres is the write side's PostgreSQL adapter: it implements the
// ports that package commands and package auth declare. The id sequences,
// idempotency keys, snapshots, sessions and login failures it keeps are
// write-side state: they live outside the read-model schema, and a rebuild
// never touches them. The projected look-ups read the read model (through
// the connection's search_path, see internal/chatd), so their answers lag
// the log.
//
// The event log itself is package eventstore/postgres, which knows nothing
// of the chat; the process's one LISTEN connection is package
// postgres/notifier.
package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is the narrow interface of a pool or a transaction.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
