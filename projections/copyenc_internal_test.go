package projections

import (
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/internal/pgtest"
)

// The binary COPY encoder's rows read back as written, edge values
// included: NULLs, negative and extreme bigints, empty and nil arrays,
// times before 2000 and before 1970, text beyond ASCII, JSON.
func TestCopyRowsRoundTrip(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE enc (i bigint, n bigint, b bool, s text, j jsonb, at timestamptz, a bigint[])`); err != nil {
		t.Fatal(err)
	}
	type row struct {
		i   int64
		n   *int64
		b   bool
		s   string
		j   []byte
		at  time.Time
		arr []int64
	}
	seven := int64(-7)
	rows := []row{ // in the order they read back: i descending
		{i: 9223372036854775807, s: "", at: time.Date(1969, 7, 20, 20, 17, 40, 1000, time.UTC)},
		{i: 1, n: &seven, b: true, s: "plain", j: []byte(`{"a": 1}`), at: time.Date(2026, 12, 6, 18, 22, 9, 149350000, time.UTC), arr: []int64{1, -2, 3}},
		{i: -9223372036854775808, b: false, s: "héllo ✓", at: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), arr: []int64{}},
	}
	var c copyRows
	for _, r := range rows {
		c.row(7)
		c.int8(r.i)
		c.int8OrNull(r.n)
		c.bool(r.b)
		c.text(r.s)
		c.jsonb(r.j)
		c.timestamptz(r.at)
		c.int8Array(r.arr)
	}
	if err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		return c.copyTo(t.Context(), tx, pgx.Identifier{"enc"}, []string{"i", "n", "b", "s", "j", "at", "a"})
	}); err != nil {
		t.Fatal(err)
	}
	k := 0
	rs, err := pool.Query(t.Context(), `SELECT i, n, b, s, j::text, at, a FROM enc ORDER BY i DESC`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var r row
		var j *string
		if err := rs.Scan(&r.i, &r.n, &r.b, &r.s, &j, &r.at, &r.arr); err != nil {
			t.Fatal(err)
		}
		want := rows[k]
		k++
		wantJ := ""
		if want.j != nil {
			wantJ = `{"a": 1}`
		}
		gotJ := ""
		if j != nil {
			gotJ = *j
		}
		if r.i != want.i || (r.n == nil) != (want.n == nil) || (r.n != nil && *r.n != *want.n) || r.b != want.b || r.s != want.s ||
			gotJ != wantJ || !r.at.Equal(want.at) || !slices.Equal(r.arr, want.arr) {
			t.Errorf("row %d read back as %+v (json %q); wrote %+v", k-1, r, gotJ, want)
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if k != len(rows) {
		t.Fatalf("%d rows read back; wrote %d", k, len(rows))
	}
}
