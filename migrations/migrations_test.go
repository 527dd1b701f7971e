package migrations_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// migratedUpTo returns a connection to a new database with the core set
// and the read-model set before the migration named name applied (to
// schema rm, on the search path), an exec that fails the test on error,
// and that migration.
func migratedUpTo(t *testing.T, ctx context.Context, name string) (*pgx.Conn, func(string, ...any), migrations.Migration) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%.60s: %v", sql, err)
		}
	}
	core, err := migrations.Load(migrations.CoreSet)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range core {
		exec(m.SQL)
	}
	ms, err := migrations.Load(migrations.ReadModelSet)
	if err != nil {
		t.Fatal(err)
	}
	exec(`CREATE SCHEMA rm; SET search_path = rm, public`)
	for _, m := range ms {
		if m.Name == name {
			return conn, exec, m
		}
		exec(m.SQL)
	}
	t.Fatalf("no migration %s", name)
	return nil, nil, migrations.Migration{}
}

// TestInboxPositionsBackfill: a read model projected before inbox rows
// carried positions gets them from their messages.
func TestInboxPositionsBackfill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, exec, backfill := migratedUpTo(t, ctx, "0003_inbox_positions.sql")
	exec(`INSERT INTO messages (id, conversation_id, sender_id, receivers, text, created_at, updated_at, commit_pos, prepare_pos)
		VALUES (5, 1, 10, '{11}', 'hi', now(), now(), 700, 701), (6, 2, 11, '{10}', 'yo', now(), now(), 650, 650)`)
	exec(`INSERT INTO inbox (user_id, message_id, conversation_id, unread)
		VALUES (10, 5, 1, false), (11, 5, 1, true), (11, 6, 2, false), (10, 6, 2, true)`)
	exec(backfill.SQL)
	rows, err := conn.Query(ctx, `SELECT ARRAY[user_id, message_id, commit_pos, prepare_pos] FROM inbox ORDER BY user_id, message_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[[4]int64])
	if err != nil {
		t.Fatal(err)
	}
	want := [][4]int64{{10, 5, 700, 701}, {10, 6, 650, 650}, {11, 5, 700, 701}, {11, 6, 650, 650}}
	if len(got) != len(want) {
		t.Fatalf("inbox = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("inbox = %v; want %v", got, want)
		}
	}
}

// TestReadModelTables: the readmodel set creates exactly the tables that
// Schema.Tables lists, and CheckpointsTable, each keyed by the columns
// listed, so the one list that rebuilds lock and verifications compare
// cannot fall behind the migrations.
func TestReadModelTables(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT c.relname, array_agg(a.attname::text ORDER BY k.n)
		FROM pg_class c
		JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r'
		GROUP BY c.relname`, migrations.ReadModel.Name())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var name string
	var key []string
	if _, err := pgx.ForEachRow(rows, []any{&name, &key}, func() error {
		got[name] = strings.Join(key, ", ")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var tables int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, migrations.ReadModel.Name()).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{migrations.CheckpointsTable: "projection"}
	for _, tb := range migrations.ReadModel.Tables() {
		want[tb.Name] = tb.OrderBy()
	}
	if !maps.Equal(got, want) || tables != len(want) {
		t.Errorf("the readmodel set creates %d tables keyed %v; want %v", tables, got, want)
	}
}

func TestSchemaNames(t *testing.T) {
	t.Parallel()
	s := migrations.ReadModel.Beside("rebuild")
	for _, c := range []struct{ got, want string }{
		{migrations.ReadModel.Name(), "readmodel"},
		{migrations.ReadModel.Ident(), `"readmodel"`},
		{migrations.ReadModel.SearchPath(), `"readmodel", public`},
		{s.Name(), "readmodel_rebuild"},
		{s.Qualified("messages"), `"readmodel_rebuild"."messages"`},
	} {
		if c.got != c.want {
			t.Errorf("got %s; want %s", c.got, c.want)
		}
	}
}

// TestUnreadCountsBackfill: a read model projected with an inbox gets the
// unread counters of its messages (readmodel 0019), for members and for
// users who left, and loses the inbox.
func TestUnreadCountsBackfill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, exec, counts := migratedUpTo(t, ctx, "0019_unread_counts.sql")
	// Room 1: users 10 and 11, and 12 who left after message 2. Room 2:
	// users 10 and 12.
	exec(`INSERT INTO conversations (id, type, created_by, created_at, updated_at, last_activity_at)
		VALUES (1, 'group', 10, now(), now(), now()), (2, 'chat', 10, now(), now(), now())`)
	exec(`INSERT INTO members (conversation_id, user_id, membership_id, joined_at)
		VALUES (1, 10, 1, now()), (1, 11, 2, now()), (2, 10, 3, now()), (2, 12, 4, now())`)
	// 12 left room 1 before past_members existed: only the inbox knows.
	exec(`INSERT INTO past_members (user_id, conversation_id) VALUES (10, 1), (11, 1), (10, 2), (12, 2)`)
	exec(`INSERT INTO inbox (user_id, message_id, conversation_id, unread, commit_pos, prepare_pos)
		VALUES (12, 1, 1, false, 1, 1), (12, 2, 1, true, 2, 2)`)
	exec(`INSERT INTO messages (id, conversation_id, sender_id, receivers, read_by, text, created_at, updated_at, commit_pos, prepare_pos)
		VALUES (1, 1, 10, '{11,12}', '{12}', 'a', now(), now(), 1, 1),
		       (2, 1, 11, '{10,12,12}', '{}', 'b', now(), now(), 2, 2),
		       (3, 1, 10, '{11}', '{11}', 'c', now(), now(), 3, 3),
		       (4, 2, 12, '{10}', '{}', 'd', now(), now(), 4, 4)`)
	exec(counts.SQL)
	// unread = message_count - not_received - read_count for members;
	// received_count - read_count for users who left.
	rows, err := conn.Query(ctx, `SELECT ARRAY[pm.conversation_id, pm.user_id,
			coalesce(c.message_count - me.not_received, pm.received_count) - pm.read_count]
		FROM past_members pm JOIN conversations c ON c.id = pm.conversation_id
		LEFT JOIN members me ON me.conversation_id = pm.conversation_id AND me.user_id = pm.user_id
		ORDER BY pm.conversation_id, pm.user_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[[]int64])
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{1, 10, 1}, {1, 11, 1}, {1, 12, 1}, {2, 10, 1}, {2, 12, 0}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("room, user, unread = %v; want %v", got, want)
	}
	var inbox *string
	if err := conn.QueryRow(ctx, `SELECT to_regclass('rm.inbox')::text`).Scan(&inbox); err != nil || inbox != nil {
		t.Fatalf("inbox after the migration: %v (%v); want none", inbox, err)
	}
}
