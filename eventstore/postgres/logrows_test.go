package postgres_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/eventstore/conformance"
	"github.com/evchat/evchat/eventstore/postgres"
)

// Log reads decode their rows from the binary encodings by hand: they must
// give what pgx's own scanning of the same rows gives, for timestamps on
// either side of PostgreSQL's epoch and payloads of any content.
func TestLogReadsDecodeLikeScan(t *testing.T) {
	ctx := t.Context()
	s, pool := newStoreAndPool(t, conformance.Options{})
	payloads := []string{`{}`, `{"text":"héllo \"wörld\" ✓","n":-1.5e300}`, `[1,2,3]`, `{"long":"` + strings.Repeat("x", 70_000) + `"}`}
	for i, p := range payloads {
		e := eventstore.EventData{ID: uuid.New(), Type: fmt.Sprintf("test.kind%d", i%2), Data: []byte(p), Metadata: []byte(`{"actor":` + fmt.Sprint(i) + `}`)}
		if _, err := s.Append(ctx, fmt.Sprintf("stream-%d", i), eventstore.Any(), e); err != nil {
			t.Fatal(err)
		}
	}
	// created_at on both sides of 2000-01-01 (binary timestamps count
	// microseconds from it), with and without fractions.
	if _, err := pool.Exec(ctx, `UPDATE events SET created_at = CASE revision + position % 4
		WHEN 0 THEN '1999-12-31 23:59:59.999999+00'::timestamptz
		WHEN 1 THEN '1970-01-01 00:00:00+00'::timestamptz
		WHEN 2 THEN '2000-01-01 00:00:00.000001+00'::timestamptz
		ELSE '2026-12-07 01:02:03.456789+00'::timestamptz END`); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT event_id, stream_id, revision, tx_id, position, type, data::text, metadata::text, created_at FROM events ORDER BY tx_id, position`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := postgres.ScanEvents(rows)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadAll(ctx, eventstore.Position{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(payloads) || len(want) != len(payloads) {
		t.Fatalf("read %d events, scanned %d, appended %d", len(got), len(want), len(payloads))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Stream != w.Stream || g.Revision != w.Revision || g.Position != w.Position ||
			g.Type != w.Type || !g.Created.Equal(w.Created) || g.Created.Location() != time.UTC {
			t.Errorf("event %d: read %+v, scanned %+v", i, brief(g), brief(w))
		}
		if !json.Valid(g.Data) || string(g.Data) != string(w.Data) || string(g.Metadata) != string(w.Metadata) {
			t.Errorf("event %d: payloads read %.40q %q, scanned %.40q %q", i, g.Data, g.Metadata, w.Data, w.Metadata)
		}
		// The data's capacity ends at its length: appending to it must
		// not overwrite the metadata that shares its allocation.
		if cap(g.Data) != len(g.Data) {
			t.Errorf("event %d: data capacity %d past its length %d", i, cap(g.Data), len(g.Data))
		}
	}
}

func brief(e eventstore.RecordedEvent) string {
	return fmt.Sprintf("{%s %s r%d %s %s %s}", e.ID, e.Stream, e.Revision, e.Position, e.Type, e.Created.Format(time.RFC3339Nano))
}

// A malformed row is an error, not a zero event.
func TestDecodeLogRowRefusesMalformedRows(t *testing.T) {
	good := func() [][]byte {
		i8 := func(v int64) []byte { return []byte{0, 0, 0, 0, 0, 0, 0, byte(v)} }
		return [][]byte{{0}, make([]byte, 16), []byte("s"), i8(1), i8(2), i8(3), []byte("t"), []byte("{}"), []byte("{}"), i8(4)}
	}
	var e eventstore.RecordedEvent
	if marker, err := postgres.DecodeLogRow(good(), &e); marker || err != nil {
		t.Fatalf("a good row: marker %v, %v", marker, err)
	}
	if marker, err := postgres.DecodeLogRow(append([][]byte{{1}}, make([][]byte, 9)...), &e); !marker || err != nil {
		t.Fatalf("the marker row: marker %v, %v", marker, err)
	}
	for name, bad := range map[string]func(r [][]byte) [][]byte{
		"short row":      func(r [][]byte) [][]byte { return r[:9] },
		"null marker":    func(r [][]byte) [][]byte { r[0] = nil; return r },
		"short id":       func(r [][]byte) [][]byte { r[1] = r[1][:15]; return r },
		"null stream":    func(r [][]byte) [][]byte { r[2] = nil; return r },
		"short revision": func(r [][]byte) [][]byte { r[3] = r[3][:4]; return r },
		"null data":      func(r [][]byte) [][]byte { r[7] = nil; return r },
		"infinity":       func(r [][]byte) [][]byte { r[9] = []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; return r },
	} {
		if _, err := postgres.DecodeLogRow(bad(good()), &e); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// Whether rows past a read are hidden is one index probe at the horizon:
// a catch-up read from the start of a long log must not walk the rest of
// it (it used to, once per batch, which made reading a log of n events
// cost n²/batch index entries).
func TestHiddenRowsCheckDoesNotWalkTheLog(t *testing.T) {
	ctx := t.Context()
	_, pool := newStoreAndPool(t, conformance.Options{})
	if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
		SELECT gen_random_uuid(), 'stream-' || g, 0, 'test.happened', '{}', '{}' FROM generate_series(1, 50000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for name, sql := range postgres.LogReadStatements {
		for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
			for _, q := range []string{`DEALLOCATE ALL`, `SET plan_cache_mode = ` + mode, `PREPARE r(bigint, bigint, int) AS ` + sql} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			var plan []map[string]any
			if err := conn.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE r(0, 0, 10)`, pgx.QueryExecModeSimpleProtocol).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			top := plan[0]["Plan"].(map[string]any)
			blocks := top["Shared Hit Blocks"].(float64) + top["Shared Read Blocks"].(float64)
			t.Logf("%s, %s: %v pages", name, mode, blocks)
			// Ten rows and one probe read a few pages; the rest of the
			// log's index is over 100.
			if blocks > 40 {
				t.Errorf("%s, %s: reading 10 events of 50,000 touched %v pages", name, mode, blocks)
			}
		}
	}
}
