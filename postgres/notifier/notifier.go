// Package notifier shares one PostgreSQL LISTEN connection among every
// listener of a process: new-event hints for the log subscription, the
// projector's "projected up to" announcements, and the real-time control
// channel (typing, session ends). One connection means one reconnect loop
// with one backoff, and one place that tells listeners when they may have
// missed something.
//
// Notifications are hints. A listener must tolerate losing some: every
// (re)connect calls its ready hook, after its channel is listened to again,
// so it can look for what it missed while no connection was up.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/internal/wait"
)

// Conn is what a notifier needs of a database: a dedicated connection to
// listen on, and any connection to notify through (a pool).
type Conn interface {
	// Connect opens a dedicated connection; the notifier closes it.
	Connect(ctx context.Context) (*pgx.Conn, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Pool adapts a pgx pool to Conn: notifications go through the pool, and
// the listening connection is a new one with the pool's configuration.
func Pool(p *pgxpool.Pool) Conn { return poolConn{p} }

type poolConn struct{ *pgxpool.Pool }

func (p poolConn) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, p.Config().ConnConfig.Copy())
}

// Notifier is a process's one LISTEN connection. Create it with New, start
// Run, and Listen from anywhere, before or after Run starts.
type Notifier struct {
	db  Conn
	log *slog.Logger

	mu      sync.Mutex
	subs    map[string]map[*Subscription]struct{}
	changed chan struct{} // wakes the loop to listen to a new channel
	ready   chan struct{} // closed after the first connect
	readyOK bool
}

// Subscription is one listener of one channel.
type Subscription struct {
	n        *Notifier
	channel  string
	onNotify func(payload string)
	onReady  func()
	// live is set once the subscription's channel is listened to on the
	// current connection.
	live bool
}

// New returns a notifier on db; nothing is connected until Run.
func New(db Conn, log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.Default()
	}
	return &Notifier{db: db, log: log, subs: map[string]map[*Subscription]struct{}{},
		changed: make(chan struct{}, 1), ready: make(chan struct{})}
}

// Listen calls onNotify with the payload of every notification on channel,
// and onReady (which may be nil) each time the channel starts being listened
// to: the first time, and after every reconnect. Both run on the notifier's
// goroutine: they must return quickly and must not call back into the
// notifier. Stop the subscription with Unlisten.
func (n *Notifier) Listen(channel string, onNotify func(payload string), onReady func()) *Subscription {
	s := &Subscription{n: n, channel: channel, onNotify: onNotify, onReady: onReady}
	n.mu.Lock()
	if n.subs[channel] == nil {
		n.subs[channel] = map[*Subscription]struct{}{}
	}
	n.subs[channel][s] = struct{}{}
	n.mu.Unlock()
	n.poke()
	return s
}

// Unlisten stops the subscription; its callbacks are not called after
// Unlisten returns, unless one is running on the notifier's goroutine.
func (s *Subscription) Unlisten() {
	n := s.n
	n.mu.Lock()
	delete(n.subs[s.channel], s)
	if len(n.subs[s.channel]) == 0 {
		delete(n.subs, s.channel)
	}
	n.mu.Unlock()
}

// Notify sends payload on channel to every listening process, this one
// included.
func (n *Notifier) Notify(ctx context.Context, channel, payload string) error {
	if _, err := n.db.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// Ready is closed once the connection has listened to every channel
// subscribed before it connected.
func (n *Notifier) Ready() <-chan struct{} { return n.ready }

func (n *Notifier) poke() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// Run keeps the connection up until ctx ends, reconnecting with backoff,
// and returns ctx.Err().
func (n *Notifier) Run(ctx context.Context) error {
	backoff := wait.Backoff{}
	for {
		connected, err := n.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connected {
			backoff.Reset()
		}
		delay := backoff.Next()
		n.log.Warn("notification listener lost; listeners poll until it reconnects", "err", err, "retry_in", delay)
		if err := wait.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// session runs one connection: it listens to every subscribed channel,
// calls the ready hooks, then delivers notifications until the connection
// fails. connected reports whether it got as far as listening.
func (n *Notifier) session(ctx context.Context) (connected bool, err error) {
	conn, err := n.db.Connect(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	n.mu.Lock()
	for _, subs := range n.subs {
		for s := range subs {
			s.live = false
		}
	}
	n.mu.Unlock()
	listened := map[string]bool{}
	for {
		if err := n.sync(ctx, conn, listened); err != nil {
			return connected, err
		}
		if !connected {
			connected = true
			n.mu.Lock()
			if !n.readyOK {
				n.readyOK = true
				close(n.ready)
			}
			n.mu.Unlock()
		}
		// Wait for a notification, or for a new channel to listen to.
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-n.changed:
				cancel()
			case <-wctx.Done():
			}
		}()
		note, err := conn.WaitForNotification(wctx)
		interrupted := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			n.deliver(note.Channel, note.Payload)
		case interrupted && errors.Is(err, context.Canceled):
			// A new subscription: listen to its channel, then wait again.
			// pgx leaves the connection usable after a cancelled wait.
			if conn.IsClosed() {
				return connected, err
			}
		default:
			return connected, err
		}
	}
}

// sync listens to the channels that have subscribers and are not listened
// to yet, unlistens those left without, and calls the ready hook of every
// subscription that was not live on this connection.
func (n *Notifier) sync(ctx context.Context, conn *pgx.Conn, listened map[string]bool) error {
	n.mu.Lock()
	var want []string
	for ch := range n.subs {
		if !listened[ch] {
			want = append(want, ch)
		}
	}
	var drop []string
	for ch := range listened {
		if n.subs[ch] == nil {
			drop = append(drop, ch)
		}
	}
	n.mu.Unlock()
	for _, ch := range want {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
		listened[ch] = true
	}
	for _, ch := range drop {
		if _, err := conn.Exec(ctx, "UNLISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("unlisten %s: %w", ch, err)
		}
		delete(listened, ch)
	}
	var fresh []*Subscription
	n.mu.Lock()
	for ch, subs := range n.subs {
		if !listened[ch] {
			continue // subscribed meanwhile: the next sync listens to it
		}
		for s := range subs {
			if !s.live {
				s.live = true
				fresh = append(fresh, s)
			}
		}
	}
	n.mu.Unlock()
	for _, s := range fresh {
		if s.onReady != nil {
			s.onReady()
		}
	}
	return nil
}

func (n *Notifier) deliver(channel, payload string) {
	n.mu.Lock()
	subs := make([]*Subscription, 0, len(n.subs[channel]))
	for s := range n.subs[channel] {
		if s.live {
			subs = append(subs, s)
		}
	}
	n.mu.Unlock()
	for _, s := range subs {
		s.onNotify(payload)
	}
}
