package postgres_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/postgres"
)

func TestSnapshots(t *testing.T) {
	t.Parallel()
	snaps := postgres.NewSnapshots(newDB(t))
	ctx := t.Context()
	const stream = "conversation-1"
	if _, ok, err := snaps.LoadSnapshot(ctx, stream); err != nil || ok {
		t.Fatalf("load of none = %v, %v; want none", ok, err)
	}
	save := func(version int, rev int64, state string) commands.Snapshot {
		t.Helper()
		s := commands.Snapshot{Version: version, Revision: rev, EventID: uuid.New(), State: json.RawMessage(state)}
		if err := snaps.SaveSnapshot(ctx, stream, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	load := func() commands.Snapshot {
		t.Helper()
		s, ok, err := snaps.LoadSnapshot(ctx, stream)
		if err != nil || !ok {
			t.Fatalf("load = %v, %v; want a snapshot", ok, err)
		}
		return s
	}
	same := func(got, want commands.Snapshot) bool {
		var g, w any
		_ = json.Unmarshal(got.State, &g)
		_ = json.Unmarshal(want.State, &w)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		return got.Version == want.Version && got.Revision == want.Revision && got.EventID == want.EventID && string(gb) == string(wb)
	}

	first := save(1, 100, `{"members": [1, 2]}`)
	if got := load(); !same(got, first) {
		t.Fatalf("loaded %+v; want %+v", got, first)
	}
	later := save(1, 200, `{"members": [1]}`)
	save(1, 150, `{"members": [3]}`) // older than the stored one: ignored
	if got := load(); !same(got, later) {
		t.Fatalf("after an older save, loaded revision %d; want %d", got.Revision, later.Revision)
	}
	// Another version of the encoding replaces it whatever its revision.
	other := save(2, 10, `{"v2": true}`)
	if got := load(); !same(got, other) {
		t.Fatalf("after another version's save, loaded %+v; want %+v", got, other)
	}
}
