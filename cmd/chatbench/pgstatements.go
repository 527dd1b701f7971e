package main

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// With -pg-statements N, PostgreSQL loads pg_stat_statements and each
// scenario ends by printing the N statements that took the server the most
// time during it (its set-up and warm-up included), so a profile of chatd
// can be read beside one of the database.

// statementsLibrary is the extension the report reads.
const statementsLibrary = "pg_stat_statements"

// enableStatements creates the extension in the database chatd uses.
func (e *env) enableStatements(ctx context.Context) error {
	return e.exec(ctx, "CREATE EXTENSION IF NOT EXISTS "+statementsLibrary)
}

// resetStatements forgets what the statements cost so far.
func (e *env) resetStatements(ctx context.Context) error {
	return e.exec(ctx, "SELECT pg_stat_statements_reset()")
}

// statementCost is one line of the report.
type statementCost struct {
	calls   int64
	totalMS float64
	rows    int64
	query   string
}

// topStatements returns the n statements with the most execution time
// since the last reset, and the execution time of all of them.
func (e *env) topStatements(ctx context.Context, n int) ([]statementCost, float64, error) {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(context.Background())
	var all float64
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements").Scan(&all); err != nil {
		return nil, 0, err
	}
	rows, err := conn.Query(ctx, `SELECT calls, total_exec_time, rows, query FROM pg_stat_statements
		ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return nil, 0, err
	}
	top, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (statementCost, error) {
		var s statementCost
		err := r.Scan(&s.calls, &s.totalMS, &s.rows, &s.query)
		return s, err
	})
	return top, all, err
}

// logStatements prints the scenario's most expensive statements.
func (e *env) logStatements(ctx context.Context, scenario string, n int) error {
	top, all, err := e.topStatements(ctx, n)
	if err != nil {
		return err
	}
	e.logf("%s: PostgreSQL execution time %.0f ms over all statements; the top %d:", scenario, all, len(top))
	for _, s := range top {
		share := 0.0
		if all > 0 {
			share = 100 * s.totalMS / all
		}
		e.logf("  %5.1f%% %9.0f ms %9d calls %7.3f ms/call %8d rows  %s",
			share, s.totalMS, s.calls, s.totalMS/float64(max(s.calls, 1)), s.rows, oneLine(s.query, 140))
	}
	return nil
}

// oneLine squeezes a statement's whitespace and cuts it to at most n runes.
func oneLine(q string, n int) string {
	q = strings.Join(strings.Fields(q), " ")
	if r := []rune(q); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return q
}
