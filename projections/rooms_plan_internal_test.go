package projections

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
)

// The projector's statements are prepared once per session, and after a
// few runs PostgreSQL may keep a generic plan for them until the tables'
// statistics change. A plan made on a new installation's small tables is
// then kept while they grow, so the statements that find rows from arrays
// of ids must find them by key at any size. These tests plan them on
// small analyzed tables, as generic and as custom plans.

// smallReadModel returns a connection to a fresh read model holding the
// first 500 messages of 200 rooms of 10, with their members' past_members
// rows, analyzed.
func smallReadModel(t *testing.T) *pgxpool.Conn {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = migrations.ReadModel.SearchPath()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Release)
	for _, sql := range []string{
		`INSERT INTO messages (id, conversation_id, sender_id, receivers, text, created_at, updated_at, commit_pos, prepare_pos)
			SELECT g, g % 200, 1, '{2,3,4,5,6,7,8,9,10}', 'a message of some length, as chat messages go', now(), now(), g, g
			  FROM generate_series(1, 500) g`,
		`INSERT INTO past_members (user_id, conversation_id)
			SELECT u, r FROM generate_series(1, 10) u, generate_series(0, 199) r`,
		`ANALYZE messages`,
		`ANALYZE past_members`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return conn
}

// plans returns the generic and the custom plan of sql, whose parameters
// have the given types, for the given literal arguments.
func plans(t *testing.T, conn *pgxpool.Conn, sql, types, args string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		for _, q := range []string{`SET plan_cache_mode = ` + mode, `PREPARE planned(` + types + `) AS ` + sql} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE planned(`+args+`)`, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `DEALLOCATE planned`); err != nil {
			t.Fatal(err)
		}
		out[mode] = plan
	}
	return out
}

// usesKey reports whether an index condition of plan holds every one of
// conds.
func usesKey(plan []string, conds ...string) bool {
	for _, line := range plan {
		if !strings.Contains(line, "Index Cond:") {
			continue
		}
		all := true
		for _, c := range conds {
			all = all && strings.Contains(line, c)
		}
		if all {
			return true
		}
	}
	return false
}

// TestDeliveriesLookUpMessagesByKey: the statement that records delivery
// receipts used to join them with the whole messages table when planned
// on a small one: in a fan-out benchmark from an empty database, 2 ms a
// batch of receipts at 10,000 messages, 44 % of the server's time.
func TestDeliveriesLookUpMessagesByKey(t *testing.T) {
	conn := smallReadModel(t)
	for name, sql := range map[string]string{"deliveredNow": deliveredNow, "deliveredBefore": deliveredBefore} {
		types, args := "bigint[], bigint[], bigint[]", "'{2,3}', '{301,302}', '{101,102}'"
		if name == "deliveredBefore" {
			types, args = types+", bigint[], bigint[]", args+", '{99999,99999}', '{99999,99999}'"
		}
		for mode, plan := range plans(t, conn, sql, types, args) {
			if !usesKey(plan, "id = d.message_id") {
				t.Errorf("%s (%s) does not look each receipt's message up by its key:\n%s", name, mode, strings.Join(plan, "\n"))
			}
		}
	}
}

// TestReadReceiptsFindRowsByKey: a read receipt finds its messages by key,
// and the reader's counters by theirs.
func TestReadReceiptsFindRowsByKey(t *testing.T) {
	conn := smallReadModel(t)
	for mode, plan := range plans(t, conn, markReadSQL, "bigint, bigint, bigint[]", "2, 101, '{301,302}'") {
		text := strings.Join(plan, "\n")
		if !usesKey(plan, "id = want.id") {
			t.Errorf("%s: the messages are not looked up by key:\n%s", mode, text)
		}
		if !usesKey(plan, "user_id = ") || strings.Contains(text, "Seq Scan on past_members") {
			t.Errorf("%s: the reader's counters are not found by key:\n%s", mode, text)
		}
	}
}
