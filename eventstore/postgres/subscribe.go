package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/wait"
)

// SubscribeAll implements eventstore.Store.
//
// It reads the log from its cursor in batches. When it has nothing to read
// it waits for a wake-up: an append in this process, a hint from another
// process (Options.Hints), or the polling interval, so a lost hint costs
// latency, never data. When rows exist that the
// visibility horizon still hides (a transaction older than them is running)
// it looks again after a short, growing delay instead of waiting for a hint.
// Subscriptions of one store that read from the same cursor share the read
// (see readShared).
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error {
	s.startListener()
	cursor := from
	reported := false
	// Retries of an unavailable store, and looks past rows a running
	// transaction still hides.
	failDelay := wait.Backoff{First: 50 * time.Millisecond, Max: 5 * time.Second}
	hiddenDelay := wait.Backoff{First: time.Millisecond, Max: 50 * time.Millisecond}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	var lastRead time.Time
	// fresh asks for a read of the database rather than another
	// subscription's result: after a poll interval or a wait for hidden
	// rows, the point is to look again.
	fresh := false
	for {
		woken, gen := s.wake.wait()
		lastRead = time.Now()
		events, hidden, current, err := s.readShared(ctx, cursor, s.opts.BatchSize, gen, fresh)
		fresh = false
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, eventstore.ErrUnavailable):
			delay := failDelay.Next()
			s.log.Warn("event subscription: store unavailable, retrying", "err", err, "in", delay)
			if err := sleep(ctx, timer, delay); err != nil {
				return err
			}
			fresh = true
			continue
		case err != nil:
			return err
		}
		failDelay.Reset()

		if len(events) > 0 {
			// A result older than this wake-up may stop short of the head:
			// read again at once, and say caught up only from a current one.
			more := len(events) == s.opts.BatchSize || !current
			cursor = events[len(events)-1].Position
			if err := handle(ctx, eventstore.Delivery{Events: events, CaughtUp: !more}); err != nil {
				return err
			}
			reported = reported || !more
			if more {
				continue
			}
		} else if !reported {
			reported = true
			if err := handle(ctx, eventstore.Delivery{CaughtUp: true}); err != nil {
				return err
			}
		}

		wait := s.opts.PollInterval
		if hidden {
			wait = hiddenDelay.Next()
		} else {
			hiddenDelay.Reset()
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-woken:
			if !timer.Stop() {
				<-timer.C
			}
			// Under load wake-ups come per commit: read at most once a
			// millisecond, so each read takes a larger batch. An idle
			// subscriber reads at once.
			if wait := wakeCoalesce - time.Since(lastRead); wait > 0 {
				if err := sleep(ctx, timer, wait); err != nil {
					return err
				}
			}
		case <-timer.C:
			fresh = true
		}
	}
}

// wakeCoalesce is the pause between a wake-up and the read it causes.
const wakeCoalesce = time.Millisecond

func sleep(ctx context.Context, timer *time.Timer, d time.Duration) error {
	timer.Reset(d)
	select {
	case <-ctx.Done():
		if !timer.Stop() {
			<-timer.C
		}
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// poke wakes this process's subscribers at once and asks the notify loop to
// tell other processes.
func (s *Store) poke() {
	s.wake.signal()
	if s.opts.Hints == nil {
		return
	}
	select {
	case s.pokes <- struct{}{}:
	default:
	}
}

// notifyLoop sends NOTIFY outside the appending transactions: a NOTIFY inside
// them would take PostgreSQL's global notify lock at every commit and
// serialise them. Pokes that arrive while one is in flight coalesce.
func (s *Store) notifyLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.pokes:
		}
		if err := s.opts.Hints.Notify(s.ctx, ""); err != nil && s.ctx.Err() == nil {
			s.log.Debug("event store: notify failed", "err", err)
		}
		// At most one notification a millisecond: it is only a hint.
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// startListener subscribes, once, to the other processes' hints, which
// wake this process's subscribers like its own appends do.
func (s *Store) startListener() {
	s.listenOnce.Do(func() {
		if s.opts.Hints == nil {
			return
		}
		// On every (re)connect too: hints may have been missed meanwhile.
		s.unlisten = s.opts.Hints.Listen(func(string) { s.wake.signal() }, s.wake.signal)
	})
}

// broadcaster wakes every waiter at once: wait returns a channel that the
// next signal closes, and the generation: how many signals came before.
type broadcaster struct {
	mu  sync.Mutex
	ch  chan struct{}
	gen uint64
}

func newBroadcaster() *broadcaster { return &broadcaster{ch: make(chan struct{})} }

func (b *broadcaster) wait() (<-chan struct{}, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch, b.gen
}

// generation is the number of signals so far.
func (b *broadcaster) generation() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gen
}

func (b *broadcaster) signal() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.gen++
	b.mu.Unlock()
}
