package commands_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// delivered is an UndeliveredLookup that treats ids in done as delivered.
type delivered struct{ done map[int64]bool }

func (d delivered) Undelivered(_ context.Context, _, _ int64, ids []int64) ([]int64, error) {
	var out []int64
	for _, id := range ids {
		if !d.done[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

func TestDeliveriesRecordInBulk(t *testing.T) {
	store := newMemStore()
	svc := commands.New(commands.Config{Store: store, Registry: domain.NewRegistry()})
	d := commands.NewDeliveries(svc, commands.DeliveriesConfig{Lookup: delivered{done: map[int64]bool{5: true}}, MaxPending: 4})
	// Repeats are noted once; 5 is delivered already; past 4 pending ids
	// the rest are dropped.
	d.Record(1, 2, 3, 4, 3)
	d.Record(1, 2, 4, 5)
	d.Record(1, 7, 3)
	d.Record(1, 7, 9) // the fifth id: dropped
	d.Flush(context.Background())
	read := func(stream string) [][]int64 {
		evs, err := store.ReadStream(context.Background(), stream, eventstore.Forwards, 0, 10)
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		var out [][]int64
		for _, e := range evs {
			var m domain.MessagesDelivered
			if err := json.Unmarshal(e.Data, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m.MessageIDs)
		}
		return out
	}
	if got := read(domain.DeliveryStream(1, 2)); len(got) != 1 || !slices.Equal(got[0], []int64{3, 4}) {
		t.Fatalf("receiver 2's receipts = %v; want one of [3 4]", got)
	}
	if got := read(domain.DeliveryStream(1, 7)); len(got) != 1 || !slices.Equal(got[0], []int64{3}) {
		t.Fatalf("receiver 7's receipts = %v; want one of [3]", got)
	}
	// Nothing pending: a flush appends nothing.
	d.Flush(context.Background())
	if got := read(domain.DeliveryStream(1, 2)); len(got) != 1 {
		t.Fatalf("after an empty flush: %v; want still one", got)
	}
}
