package readmodel

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestUserMessagesWalkRoomsInOrder: a page of a user's messages walks each
// of their rooms in index order, stopping early: its queries run with
// bitmap scans off. (In a benchmark a minute into a burst of messages, the
// planner, left to itself with statistics taken on a smaller table, read
// every message of each room with bitmap scans and sorted them: 40 ms for
// 125 rooms instead of 2.)
func TestUserMessagesWalkRoomsInOrder(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = migrations.ReadModel.SearchPath()
	cfg.MaxConns = 1 // the setting is checked on the connection that ran the query
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// 200 rooms of 10 members, 800 messages each.
	for _, sql := range []string{
		`INSERT INTO past_members (user_id, conversation_id, joined_commit, joined_prepare)
			SELECT u, r, 0, 0 FROM generate_series(1, 10) u, generate_series(0, 199) r`,
		`INSERT INTO messages (id, conversation_id, sender_id, receivers, text, created_at, updated_at, commit_pos, prepare_pos)
			SELECT g, g % 200, g % 10 + 1, ARRAY(SELECT u FROM generate_series(1, 10) u WHERE u <> g % 10 + 1), 'a message', now(), now(), g, g
			  FROM generate_series(1, 160000) g`,
		`ANALYZE`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%.50s: %v", sql, err)
		}
	}
	off := withoutBitmaps{pool}
	var setting string
	if err := off.QueryRow(ctx, `SHOW enable_bitmapscan`).Scan(&setting); err != nil || setting != "off" {
		t.Fatalf("enable_bitmapscan in the query = %q (%v); want off", setting, err)
	}
	for _, tt := range []struct {
		name string
		desc bool
		cond string
		args []any
	}{
		{"newest page", true, "", []any{int64(3), 51}},
		{"page back from a cursor", true, " AND (m.commit_pos, m.prepare_pos) < ($3, $4)", []any{int64(3), 51, int64(90000), int64(90000)}},
		{"page forward from a cursor", false, " AND (m.commit_pos, m.prepare_pos) > ($3, $4)", []any{int64(3), 51, int64(90000), int64(90000)}},
	} {
		rows, err := off.Query(ctx, "EXPLAIN "+userMessagesPage(tt.cond, tt.desc, "$2"), tt.args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if strings.Contains(plan, "Bitmap Heap Scan on messages") || !strings.Contains(plan, "Index Scan") {
			t.Errorf("%s: does not walk the rooms in index order:\n%s", tt.name, plan)
		}
	}
	// The setting does not outlive the query.
	if err := pool.QueryRow(ctx, `SHOW enable_bitmapscan`).Scan(&setting); err != nil || setting != "on" {
		t.Errorf("enable_bitmapscan after the query = %q (%v); want on", setting, err)
	}
}
