package commands_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

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

// lookupErr is an UndeliveredLookup that fails like a database client:
// with the context's error once it has ended, else with err (if set).
type lookupErr struct{ err error }

func (l lookupErr) Undelivered(ctx context.Context, _, _ int64, ids []int64) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("undelivered: %w", err)
	}
	if l.err != nil {
		return nil, fmt.Errorf("undelivered: %w", l.err)
	}
	return ids, nil
}

// TestDeliveriesFlushCanceledIsQuiet: a flush whose context is canceled
// (shutdown) stops without a warning; one that runs out of time warns
// once, not per receiver; a look-up that fails for another reason still
// warns.
func TestDeliveriesFlushCanceledIsQuiet(t *testing.T) {
	store := newMemStore()
	svc := commands.New(commands.Config{Store: store, Registry: domain.NewRegistry()})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	newDeliveries := func(err error) *commands.Deliveries {
		d := commands.NewDeliveries(svc, commands.DeliveriesConfig{Lookup: lookupErr{err: err}, Logger: logger})
		d.Record(1, 2, 3, 4)
		d.Record(1, 7, 3)
		d.Record(2, 2, 5)
		return d
	}

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	newDeliveries(nil).Flush(canceled)
	if logs.Len() > 0 {
		t.Fatalf("a canceled flush logged:\n%s", logs.String())
	}
	for _, stream := range []string{domain.DeliveryStream(1, 2), domain.DeliveryStream(1, 7), domain.DeliveryStream(2, 2)} {
		if evs, err := store.ReadStream(context.Background(), stream, eventstore.Forwards, 0, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Fatalf("%s after a canceled flush: %d events, %v; want none", stream, len(evs), err)
		}
	}

	expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	newDeliveries(nil).Flush(expired)
	if got := logs.String(); strings.Count(got, "level=WARN") != 1 || !strings.Contains(got, "ran out of time") || !strings.Contains(got, "receivers=3") {
		t.Fatalf("a flush out of time logged %q; want one warning for 3 receivers", got)
	}
	logs.Reset()

	// A real failure still warns, receiver by receiver.
	newDeliveries(errors.New("connection refused")).Flush(context.Background())
	if got := logs.String(); strings.Count(got, "look-up failed") != 3 || !strings.Contains(got, "connection refused") {
		t.Fatalf("failed look-ups logged %q; want a warning per receiver", got)
	}
}
