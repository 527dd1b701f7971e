package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, connURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func currentDatabase(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(t.Context(), "select current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestNewDatabaseGivesDistinctDatabases(t *testing.T) {
	t.Parallel()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("same URL twice: %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	if currentDatabase(t, ca) == currentDatabase(t, cb) {
		t.Fatal("both URLs lead to the same database")
	}
	if _, err := ca.Exec(t.Context(), "create table only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cb.QueryRow(t.Context(), "select count(*) from pg_tables where tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a table created in the first database shows in the second")
	}
}

func TestNewDatabaseParallelAndDropped(t *testing.T) {
	t.Parallel()
	names := make([]string, 6)
	t.Run("group", func(t *testing.T) {
		for i := range names {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				conn := connect(t, NewDatabase(t))
				names[i] = currentDatabase(t, conn)
				// An open connection must not keep the database from being dropped.
			})
		}
	})
	adminURL, _, err := target()
	if err != nil {
		t.Fatal(err)
	}
	admin := connect(t, adminURL)
	for _, name := range names {
		if !strings.HasPrefix(name, "t_") {
			t.Errorf("database name %q", name)
		}
		var n int
		if err := admin.QueryRow(t.Context(), "select count(*) from pg_database where datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test", name)
		}
	}
}

func TestServer(t *testing.T) {
	if os.Getenv(EnvURL) != "" {
		t.Skipf("%s is set: no embedded server", EnvURL)
	}
	t.Parallel()
	s := Server(t)
	if !s.Started() {
		t.Error("shared server was attached, not started")
	}
	if Server(t) != s {
		t.Error("Server returned two servers")
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("postgres://u:p%40ss@db.example:5433/postgres?sslmode=disable", "t_1")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	if u.Path != "/t_1" || u.Host != "db.example:5433" || pw != "p@ss" || u.RawQuery != "sslmode=disable" {
		t.Errorf("withDatabase = %s", got)
	}
	if _, err := withDatabase("host=localhost dbname=x", "t_1"); err == nil {
		t.Error("keyword/value string accepted")
	}
}

// The event store's tests show how it treats a prepared transaction, so the
// test server must allow them.
func TestServerAllowsPreparedTransactions(t *testing.T) {
	t.Parallel()
	if os.Getenv(EnvURL) != "" {
		t.Skipf("%s is set: the server is not ours to configure", EnvURL)
	}
	conn := connect(t, NewDatabase(t))
	var n int
	if err := conn.QueryRow(t.Context(), "select current_setting('max_prepared_transactions')::int").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != maxPreparedTransactions {
		t.Fatalf("max_prepared_transactions = %d; want %d", n, maxPreparedTransactions)
	}
}
