package commands

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// Sends into one room are combined: while one send appends, the sends that
// queue up behind it are decided together, in arrival order, and appended as
// one append at the exact revision. A hot room then costs one append per
// batch instead of one per message, with ids still rising in log order. Each
// send keeps its own actor, result and error.
const maxCombined = 64

// The state of a queued send. A request moves once, from pending either to
// taken (the leader put it in a batch) or to abandoned (its caller gave up
// first); a compare-and-swap decides which, so a send whose caller has
// returned is never appended.
const (
	sendPending int32 = iota
	sendTaken
	sendAbandoned
)

type sendReq struct {
	actor   Actor
	content domain.MessageContent
	state   atomic.Int32
	done    chan sendResult // buffered: the leader never waits for a caller
}

type sendResult struct {
	sent Sent
	err  error
}

// sendQueue holds the sends waiting for one room; while it has any, one
// goroutine leads and appends for all.
type sendQueue struct {
	pending []*sendReq
	leading bool
}

type sendQueues struct {
	mu     sync.Mutex
	queues map[int64]*sendQueue
}

func newSendQueues() *sendQueues { return &sendQueues{queues: map[int64]*sendQueue{}} }

// sendCombined sends a message without an idempotency key through the
// room's queue. It waits for its own result or its own context only: the
// batches behind its own run in a goroutine of their own.
func (s *Service) sendCombined(ctx context.Context, a Actor, cmd SendMessage) (Sent, error) {
	if err := ctx.Err(); err != nil {
		return Sent{}, err
	}
	req := &sendReq{actor: a, content: cmd.Content, done: make(chan sendResult, 1)}
	qs := s.sendQueues
	qs.mu.Lock()
	q := qs.queues[cmd.ConversationID]
	if q == nil {
		q = &sendQueue{}
		qs.queues[cmd.ConversationID] = q
	}
	q.pending = append(q.pending, req)
	lead := !q.leading
	q.leading = true
	qs.mu.Unlock()

	if lead {
		// The leader works for the sends queued behind this one too: it
		// keeps this request's values but not its cancellation.
		s.leadFirst(context.WithoutCancel(ctx), cmd.ConversationID, q)
	}
	select {
	case r := <-req.done:
		return r.sent, r.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(sendPending, sendAbandoned) {
			return Sent{}, ctx.Err() // never appended
		}
		// In a batch already: its append may land, as any write cut off
		// on its way may.
		select {
		case r := <-req.done:
			return r.sent, r.err
		default:
			return Sent{}, ctx.Err()
		}
	}
}

// leadFirst appends the first batch of a room's queue on the caller's
// goroutine, and hands what queued behind it to a goroutine of its own, so
// that the caller answers once its own batch is appended. A room without
// contention (most sends) then starts no goroutine: a new one grew its
// stack again for every batch, encoding the events (a few percent of
// chatd's CPU in the profiles of a send load).
func (s *Service) leadFirst(ctx context.Context, room int64, q *sendQueue) {
	batch := s.nextBatch(room, q)
	if len(batch) == 0 {
		return
	}
	s.sendBatch(ctx, room, batch)
	if next := s.nextBatch(room, q); len(next) > 0 {
		go func() {
			s.sendBatch(ctx, room, next)
			s.leadSends(ctx, room, q)
		}()
	}
}

// leadSends appends the room's queued sends, a batch at a time, until the
// queue is empty.
func (s *Service) leadSends(ctx context.Context, room int64, q *sendQueue) {
	for {
		batch := s.nextBatch(room, q)
		if len(batch) == 0 {
			return
		}
		s.sendBatch(ctx, room, batch)
	}
}

// nextBatch takes up to maxCombined pending sends off the queue, in arrival
// order, skipping the abandoned ones. With none left it ends the lead and
// returns nil.
func (s *Service) nextBatch(room int64, q *sendQueue) []*sendReq {
	qs := s.sendQueues
	qs.mu.Lock()
	defer qs.mu.Unlock()
	var batch []*sendReq
	n := 0
	for _, r := range q.pending {
		if len(batch) == maxCombined {
			break
		}
		n++
		if r.state.CompareAndSwap(sendPending, sendTaken) {
			batch = append(batch, r)
		}
	}
	clear(q.pending[:n]) // let the answered requests go
	q.pending = q.pending[n:]
	if len(batch) == 0 {
		q.leading = false
		delete(qs.queues, room)
	}
	return batch
}

// loadForSends is loadConversationAt for a batch of sends. A cached state
// comes as a copy that shares its members, admins and invites with the
// cached one (see convState.forSends): a batch of sends applies its
// messages only, which change none of them.
func (s *Service) loadForSends(ctx context.Context, room int64, optimistic bool) (*convState, int64, error) {
	if optimistic {
		if state, rev, ok := s.convs.get(domain.ConversationStream(room)); ok {
			return state.forSends(), rev, nil
		}
	}
	return s.loadConversationAt(ctx, room, optimistic)
}

// sendBatch decides and appends a batch of sends to one room.
func (s *Service) sendBatch(ctx context.Context, room int64, batch []*sendReq) {
	stream := domain.ConversationStream(room)
	unlock := s.locks.lock(stream)
	defer unlock()
	fail := func(err error) {
		for _, r := range batch {
			r.done <- sendResult{err: err}
		}
	}
	for attempt := 0; ; attempt++ {
		st, rev, err := s.loadForSends(ctx, room, attempt == 0)
		if err != nil {
			fail(err)
			return
		}
		c := st.conv
		errs := make([]error, len(batch))
		var accepted []int
		for i, r := range batch {
			if errs[i] = c.CheckSend(r.actor.UserID, r.content, s.limits); errs[i] == nil {
				accepted = append(accepted, i)
			}
		}
		if attempt == 0 && rev >= 0 && len(accepted) < len(batch) {
			// A refusal decided on cached state is not checked by any
			// append: decide again on the stream as it is.
			if _, frev, ferr := s.loadConversation(ctx, room); ferr == nil && frev != rev {
				continue
			}
		}
		if len(accepted) == 0 {
			for i, r := range batch {
				r.done <- sendResult{err: errs[i]}
			}
			return
		}
		ids, err := s.messageIDs.take(ctx, len(accepted), c.LastMessageID)
		if err != nil {
			fail(fmt.Errorf("send message: %w", err))
			return
		}
		msgs := make([]domain.MessageSent, len(accepted))
		ats := make([]time.Time, len(accepted))
		var data []eventstore.EventData
		for j, i := range accepted {
			r := batch[i]
			ev := c.Send(r.actor.UserID, ids[j], r.content)
			c.Apply(ev[0]) // c is this attempt's copy: cached only if the append lands
			msgs[j] = ev[0].(domain.MessageSent)
			d, at, err := s.encode(r.actor, nil, ev...)
			if err != nil {
				fail(err)
				return
			}
			ats[j] = at
			data = append(data, d...)
		}
		res, err := s.store.Append(ctx, stream, expectedAfter(rev), data...)
		if conflict(err) && attempt < s.retries {
			s.convs.drop(stream)
			backOff(ctx, attempt)
			continue
		}
		if conflict(err) {
			fail(ErrConflict)
			return
		}
		if err != nil {
			fail(fmt.Errorf("append to %s: %w", stream, err))
			return
		}
		s.appended(ctx, stream, st, rev, len(data), int64(res.Revision), data[len(data)-1].ID)
		positions := s.appendedPositions(ctx, stream, res, len(data))
		for j, i := range accepted {
			batch[i].done <- sendResult{sent: Sent{Written: Written{Position: positions[j], At: ats[j]}, Message: msgs[j]}}
			errs[i] = nil
		}
		for i, r := range batch {
			if errs[i] != nil {
				r.done <- sendResult{err: errs[i]}
			}
		}
		return
	}
}
