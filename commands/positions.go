package commands

import (
	"context"
	"time"

	"github.com/evchat/evchat/eventstore"
)

// readBackTries and readBackWait bound the read-back of a combined
// append's positions.
const (
	readBackTries = 3
	readBackWait  = 2 * time.Second
)

// appendedPositions returns the log position of each of the n events an
// append wrote, in order. An append tells only where its last event landed,
// and a combined send answers each sender with its own message's position
// (a client resumes its WebSocket from it): for more than one event, the
// events are read back from the stream.
//
// When the read-back fails, every event gets the last one's position: the
// append stands and each sender must get an answer. That position is at or
// after each message, so waiting for the read model on it still shows the
// message; it is only a resume point that skips the other messages of the
// same append, which is why the failure is logged.
func (s *Service) appendedPositions(ctx context.Context, stream string, res eventstore.AppendResult, n int) []eventstore.Position {
	out := make([]eventstore.Position, n)
	out[n-1] = res.Position
	if n == 1 {
		return out
	}
	first := res.Revision + 1 - uint64(n)
	var err error
	for range readBackTries {
		var evs []eventstore.RecordedEvent
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackWait)
		evs, err = s.store.ReadStream(rctx, stream, eventstore.Forwards, first, n)
		cancel()
		if err == nil && len(evs) == n && evs[0].Revision == first {
			for i, e := range evs {
				out[i] = e.Position
			}
			return out
		}
	}
	s.log.Warn("send message: read back the positions of a combined append; answering the last one's",
		"stream", stream, "err", err)
	for i := range out {
		out[i] = res.Position
	}
	return out
}
