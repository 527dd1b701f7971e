package esdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/wait"
)

// SubscribeAll implements eventstore.Store with a catch-up subscription to
// $all from the last position handled (exclusive on the server), skipping
// system events.
//
// Events are delivered in batches of what has arrived, up to
// Options.BatchSize. CaughtUp is set from the server's caught-up message
// (servers since 23.10) or, for older servers, once an event at or after
// the head of $all as of subscribing has arrived. When the subscription
// drops it subscribes again from the last position handled, with a
// growing delay; when the library has closed itself the store rebuilds it.
//
// It returns ctx.Err() when ctx ends, the handler's error as is, ErrClosed
// when the store is closed, and an error for failures that subscribing
// again cannot cure (access denied, for one).
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error {
	sctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()

	cursor := from
	backoff := wait.Backoff{First: 50 * time.Millisecond, Max: s.opts.MaxRetryDelay}
	for {
		established, err := s.subscribeOnce(sctx, &cursor, handle)
		var herr handlerError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case s.ctx.Err() != nil:
			return ErrClosed
		case errors.As(err, &herr):
			return herr.err
		case permanent(err):
			return fmt.Errorf("subscribe to $all: %w", err)
		}
		if established {
			backoff.Reset()
		}
		delay := backoff.Next()
		s.log.Warn("event subscription dropped; subscribing again", "err", err, "from", cursor.String(), "in", delay)
		if err := wait.Sleep(sctx, delay); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrClosed
		}
	}
}

// handlerError carries the handler's error out of subscribeOnce untouched.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

// item is one message of the library's subscription.
type item struct {
	event      *kurrent.RecordedEvent
	caughtUp   bool
	fellBehind bool
	err        error
}

// subscribeOnce runs one subscription until it fails, advancing *cursor
// past every event handled. It reports whether the server confirmed the
// subscription.
func (s *Store) subscribeOnce(ctx context.Context, cursor *eventstore.Position, handle func(context.Context, eventstore.Delivery) error) (established bool, err error) {
	head, err := s.rawHead(ctx)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	c := s.current()
	release, err := c.enter(ctx)
	if err != nil {
		return false, err
	}
	sub, err := c.client.SubscribeToAll(ctx, kurrent.SubscribeToAllOptions{From: allPosition(*cursor)})
	release()
	s.observe(c, err)
	if err != nil {
		return false, err
	}

	items := make(chan item, s.opts.BatchSize)
	go pump(ctx, sub, items)
	defer func() {
		cancel()
		_ = sub.Close()
		for range items { // wait for the pump to stop
		}
	}()

	caughtUp := !cursor.Less(head) // nothing to catch up on
	reported := false
	for {
		var it item
		var open bool
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case it, open = <-items:
		}
		if !open { // the pump only stops early when ctx ends
			return true, errors.Join(ctx.Err(), errors.New("subscription ended"))
		}
		var batch []eventstore.RecordedEvent
		var dropped error
		for {
			switch {
			case it.err != nil:
				dropped = it.err
			case it.caughtUp:
				caughtUp = true
			case it.fellBehind:
				caughtUp, reported = false, false
			case it.event != nil:
				p := position(it.event.Position)
				if cursor.Less(p) {
					*cursor = p
					if !p.Less(head) {
						caughtUp = true
					}
					if s.visible(it.event) {
						batch = append(batch, s.recorded(it.event))
					}
				}
			}
			if dropped != nil || len(batch) >= s.opts.BatchSize {
				break
			}
			var more bool
			select {
			case it, more = <-items:
			default:
			}
			if !more {
				break
			}
		}
		if len(batch) > 0 || (caughtUp && !reported) {
			if err := handle(ctx, eventstore.Delivery{Events: batch, CaughtUp: caughtUp}); err != nil {
				return true, handlerError{err}
			}
			reported = reported || caughtUp
		}
		if dropped != nil {
			return true, dropped
		}
	}
}

// pump turns the library's blocking Recv into items, until the
// subscription drops or ctx ends; it closes items when it returns.
func pump(ctx context.Context, sub *kurrent.Subscription, items chan<- item) {
	defer close(items)
	for {
		ev := sub.Recv()
		var it item
		switch {
		case ev.SubscriptionDropped != nil:
			it.err = ev.SubscriptionDropped.Error
			if it.err == nil {
				it.err = errors.New("subscription dropped")
			}
		case ev.EventAppeared != nil:
			it.event = ev.EventAppeared.OriginalEvent()
			if it.event == nil {
				continue
			}
		case ev.CaughtUp != nil:
			it.caughtUp = true
		case ev.FellBehind != nil:
			it.fellBehind = true
		default: // checkpoints: only filtered subscriptions get them
			continue
		}
		select {
		case items <- it:
		case <-ctx.Done():
			return
		}
		if it.err != nil {
			return
		}
	}
}
