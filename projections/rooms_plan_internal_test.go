package projections

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
)

// TestDeliveriesLookUpMessagesByKey: the statement that records delivery
// receipts finds each receipt's message by its key even when planned while
// the messages table is small. Such a plan joined the receipts with the
// whole table instead, and the projector's sessions kept it (a generic
// plan) while the table grew: in a fan-out benchmark from an empty
// database, 2 ms a batch of receipts at 10,000 messages, 44 % of the
// server's time.
func TestDeliveriesLookUpMessagesByKey(t *testing.T) {
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
	defer conn.Release()
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	insert := func(from, to int) {
		exec(fmt.Sprintf(`INSERT INTO messages (id, conversation_id, sender_id, receivers, text, created_at, updated_at, commit_pos, prepare_pos)
			SELECT g, g %% 200, 1, '{1,2,3,4,5,6,7,8,9,10}', 'a message of some length, as chat messages go', now(), now(), g, g
			  FROM generate_series(%d, %d) g`, from, to))
	}
	// The size a new installation's table has when the first batches of
	// receipts come: a plan made now is kept while the table grows (a
	// prepared statement's generic plan is not made again until the
	// statistics change).
	insert(1, 500)
	exec(`ANALYZE messages`)

	for name, sql := range map[string]string{"deliveredNow": deliveredNow, "deliveredBefore": deliveredBefore} {
		types, args := "bigint[], bigint[], bigint[]", "'{2,3}', '{15001,15002}', '{1,2}'"
		if name == "deliveredBefore" {
			types, args = types+", bigint[], bigint[]", args+", '{99999,99999}', '{99999,99999}'"
		}
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			exec(`SET plan_cache_mode = ` + mode)
			exec(`PREPARE receipts(` + types + `) AS ` + sql)
			rows, err := conn.Query(ctx, `EXPLAIN EXECUTE receipts(`+args+`)`, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			exec(`DEALLOCATE receipts`)
			byKey := false
			for _, line := range plan {
				byKey = byKey || strings.Contains(line, "Index Cond:") && strings.Contains(line, "id = d.message_id")
			}
			if !byKey {
				t.Errorf("%s (%s) does not look each receipt's message up by its key:\n%s", name, mode, strings.Join(plan, "\n"))
			}
		}
	}
}
