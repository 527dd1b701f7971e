package realtime

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// errResumeTooOld: more than the resume bound of the room's events lie
// after the position a socket resumes from.
var errResumeTooOld = errors.New("resume too old")

// resumeTooOldFrame tells a client its position is too far behind: it
// reloads the room's history over REST and opens a socket without since.
var resumeTooOldFrame = []byte(`{"type":"error","code":"resume_too_old","detail":"Too much was missed to resume; reload the conversation's messages over REST and reconnect without since."}`)

// A stream read asks for firstPage events, then twice as many each time up
// to readPage: a short gap costs a short read.
const (
	firstPage = 16
	readPage  = 256
)

// probeSize is how many events of the whole log a resume reads first: a
// socket that starts without since, or comes back after a moment, missed
// less than that of the whole log, and one read of it costs less than
// reading the receipt stream of every member of a large room.
const probeSize = 256

// roomEvents reads the events of room after since up to upTo (inclusive),
// in log order. Past one short probe of the whole log, it reads the room's
// own streams only: the conversation stream and the receipt and delivery
// streams of each reader. It never scans the global log, so what a resume costs depends on
// what the room missed, not on how long the log is. More than max of the room's events after since is
// errResumeTooOld: nothing past that bound is read.
//
// Readers are the members now (the read model is at upTo or later when
// asked) and everyone who joined or left in the events read from the
// conversation stream after it: a user who read between since and upTo was
// a member then, so is in one of the two sets. The members are asked
// before the conversation stream is read, so a leave the read model already
// shows is in that stream's events.
func (h *Hub) roomEvents(ctx context.Context, room int64, since, upTo eventstore.Position, max int) ([]eventstore.RecordedEvent, error) {
	if !since.Less(upTo) {
		return nil, nil
	}
	// The whole gap may be shorter than one probe of the log: then that
	// read holds the room's events, whatever the room.
	probe, err := h.cfg.Log.ReadAll(ctx, since, probeSize)
	if err != nil {
		return nil, err
	}
	if len(probe) < probeSize || !probe[len(probe)-1].Position.Less(upTo) {
		var out []eventstore.RecordedEvent
		for _, e := range probe {
			var r int64
			if !upTo.Less(e.Position) && parseRoom(e.Stream, &r) && r == room {
				out = append(out, e)
			}
		}
		if len(out) > max {
			return nil, errResumeTooOld
		}
		return out, nil
	}
	readers := map[int64]bool{}
	if h.cfg.Members != nil {
		members, err := h.cfg.Members(ctx, room)
		if err != nil {
			return nil, fmt.Errorf("members of room %d: %w", room, err)
		}
		for _, m := range members {
			readers[m] = true
		}
	}
	budget := max
	out, err := h.streamAfter(ctx, domain.ConversationStream(room), since, &budget)
	if err != nil {
		return nil, err
	}
	for _, e := range out {
		leaver, joiner := membershipChange(e)
		readers[leaver], readers[joiner] = true, true
	}
	delete(readers, 0)
	ids := make([]int64, 0, len(readers))
	for id := range readers {
		ids = append(ids, id)
	}
	slices.Sort(ids) // reads in a fixed order: the same work every time
	for _, id := range ids {
		rs, err := h.streamAfter(ctx, domain.ReceiptStream(room, id), since, &budget)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
		// Delivery receipts are replayed like read receipts.
		ds, err := h.streamAfter(ctx, domain.DeliveryStream(room, id), since, &budget)
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
	}
	out = slices.DeleteFunc(out, func(e eventstore.RecordedEvent) bool { return upTo.Less(e.Position) })
	slices.SortFunc(out, func(a, b eventstore.RecordedEvent) int { return a.Position.Compare(b.Position) })
	return out, nil
}

// streamAfter reads a stream backwards from its end down to the first event
// at or before since and returns those after it, taking each from budget;
// an exhausted budget is errResumeTooOld. A stream with no events has none.
func (h *Hub) streamAfter(ctx context.Context, stream string, since eventstore.Position, budget *int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	from, page := eventstore.End, firstPage
	for ; ; page = min(2*page, readPage) {
		want := min(page, *budget+1)
		events, err := h.cfg.Log.ReadStream(ctx, stream, eventstore.Backwards, from, want)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			if !since.Less(e.Position) {
				slices.Reverse(out)
				return out, nil
			}
			if *budget == 0 {
				return nil, errResumeTooOld
			}
			*budget--
			out = append(out, e)
		}
		if len(events) < want || events[len(events)-1].Revision == 0 {
			slices.Reverse(out)
			return out, nil // the stream's first event is after since
		}
		from = events[len(events)-1].Revision - 1
	}
}
