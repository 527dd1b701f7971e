package realtime

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// Presence: a user is online while they have a connection on any process.
// Each process counts its own users' connections; a PresenceStore shared by
// the processes (a table of which process has which users, with a
// heartbeat per process) tells a process whether a user's first connection
// here is their first anywhere, and whether their last one here was their
// last anywhere. A process that stops heartbeating (it crashed) is
// forgotten by the others after a while, and its users go offline then.
//
// A user whose last connection closes goes offline only after the debounce
// window, and a connection that comes back within it sends nothing: a
// reconnect is not news. Presence is ephemeral: frames travel over the bus
// (control notices), never through the log, and carry no position.

// DefaultPresenceDebounce is how long a user's last connection may be gone
// before they count as offline.
const DefaultPresenceDebounce = 5 * time.Second

// Seen is when a user went offline.
type Seen struct {
	User int64
	At   time.Time
}

// PresenceStore keeps which users have connections on which live process,
// and when each user was last seen.
type PresenceStore interface {
	// Connected notes that this process has a connection of user, and
	// reports whether no live process had one before (they came online).
	Connected(ctx context.Context, user int64) (first bool, err error)
	// Disconnected notes that this process has no connection of user any
	// more, and reports whether no live process has one (they went
	// offline; at is kept as their last_seen then).
	Disconnected(ctx context.Context, user int64, at time.Time) (last bool, err error)
	// Heartbeat tells that this process is alive, forgets processes that
	// have not been for a while, and returns the users who were online
	// only on those (offline now).
	Heartbeat(ctx context.Context) ([]Seen, error)
	// Gone forgets this process (it is stopping) and returns the users who
	// were online only here.
	Gone(ctx context.Context, at time.Time) ([]Seen, error)
}

// presenceOp is a change for the store, applied in order by one worker.
type presenceOp struct {
	user   int64
	online bool
	at     time.Time
}

// userPresence is one user's connections on this process.
type userPresence struct {
	count int
	// offline cancels the pending offline change of a user whose last
	// connection closed within the debounce window.
	offline func() bool
}

// presence follows this process's users and tells the store.
type presence struct {
	h *Hub

	mu    sync.Mutex
	users map[int64]*userPresence
	ops   []presenceOp
	wake  chan struct{}

	// frames are presence notices heard on the bus, rendered in order by
	// one goroutine.
	frames chan control
}

func newPresence(h *Hub) *presence {
	return &presence{h: h, users: map[int64]*userPresence{}, wake: make(chan struct{}, 1), frames: make(chan control, 256)}
}

// up counts a connection of user that hears its room.
func (p *presence) up(user int64) {
	if p.h.cfg.Presence == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[user]
	if u == nil {
		u = &userPresence{}
		p.users[user] = u
	}
	u.count++
	if u.count > 1 {
		return
	}
	if u.offline != nil {
		stopped := u.offline()
		u.offline = nil
		if stopped {
			return // back within the window: still online, nothing to say
		}
	}
	p.enqueue(presenceOp{user: user, online: true})
}

// down uncounts a connection of user; the last one starts the debounce.
func (p *presence) down(user int64) {
	if p.h.cfg.Presence == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[user]
	if u == nil || u.count == 0 {
		return
	}
	if u.count--; u.count > 0 {
		return
	}
	u.offline = p.h.cfg.Clock.AfterFunc(p.h.cfg.PresenceDebounce, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.users[user] != u || u.count > 0 || u.offline == nil {
			return
		}
		u.offline = nil
		delete(p.users, user)
		p.enqueue(presenceOp{user: user, online: false, at: p.h.cfg.Clock.Now()})
	})
}

// enqueue queues a change for the worker; p.mu is held.
func (p *presence) enqueue(op presenceOp) {
	p.ops = append(p.ops, op)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// heartbeatEvery is how often a process tells the store it is alive.
const heartbeatEvery = 10 * time.Second

// run applies the changes in order, heartbeats, renders the notices heard,
// and, when ctx ends, tells the store this process is gone.
func (p *presence) run(ctx context.Context) {
	if p.h.cfg.Presence == nil {
		return
	}
	go p.render(ctx)
	beat := time.NewTicker(p.h.cfg.PresenceHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			seen, err := p.h.cfg.Presence.Gone(gctx, p.h.cfg.Clock.Now())
			if err != nil {
				p.h.log.Warn("presence: leave", "err", err)
			}
			p.announceOffline(gctx, seen)
			cancel()
			return
		case <-beat.C:
			seen, err := p.h.cfg.Presence.Heartbeat(ctx)
			if err != nil {
				p.h.log.Warn("presence: heartbeat", "err", err)
			}
			p.announceOffline(ctx, seen)
		case <-p.wake:
		}
		p.mu.Lock()
		ops := p.ops
		p.ops = nil
		p.mu.Unlock()
		for _, op := range ops {
			p.apply(ctx, op)
		}
	}
}

func (p *presence) apply(ctx context.Context, op presenceOp) {
	st := p.h.cfg.Presence
	if op.online {
		first, err := st.Connected(ctx, op.user)
		if err != nil {
			p.h.log.Warn("presence: connect", "user", op.user, "err", err)
			return
		}
		if first {
			p.publish(ctx, control{Kind: "presence", User: op.user, Online: true})
		}
		return
	}
	last, err := st.Disconnected(ctx, op.user, op.at)
	if err != nil {
		p.h.log.Warn("presence: disconnect", "user", op.user, "err", err)
		return
	}
	if last {
		at := op.at.UTC()
		p.publish(ctx, control{Kind: "presence", User: op.user, Online: false, LastSeen: &at})
	}
}

func (p *presence) announceOffline(ctx context.Context, seen []Seen) {
	for _, s := range seen {
		at := s.At.UTC()
		p.publish(ctx, control{Kind: "presence", User: s.User, Online: false, LastSeen: &at})
	}
}

func (p *presence) publish(ctx context.Context, c control) {
	if err := p.h.publish(ctx, c); err != nil {
		p.h.log.Warn("presence: publish", "err", err)
	}
}

// heard queues a presence notice from the bus; a full queue drops it
// (presence is ephemeral: the next change tells the truth again).
func (p *presence) heard(c control) {
	select {
	case p.frames <- c:
	default:
	}
}

// render sends each notice heard to this process's connections of the
// users who share a room with its user, in the order heard.
func (p *presence) render(ctx context.Context) {
	for {
		var c control
		select {
		case <-ctx.Done():
			return
		case c = <-p.frames:
		}
		if p.h.cfg.CoMembers == nil {
			continue
		}
		p.h.mu.Lock()
		var targets []*Session
		for so := range p.h.all {
			if so.user != c.User {
				targets = append(targets, so)
			}
		}
		p.h.mu.Unlock()
		if len(targets) == 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		co, err := p.h.cfg.CoMembers(qctx, c.User)
		cancel()
		if err != nil {
			p.h.log.Warn("presence: rooms of user", "user", c.User, "err", err)
			continue
		}
		var lastSeen any
		if c.LastSeen != nil {
			lastSeen = c.LastSeen.UTC().Format(presenceTime)
		}
		frame, _ := json.Marshal(map[string]any{"type": "presence", "user": c.User, "online": c.Online, "last_seen": lastSeen})
		for _, so := range targets {
			if slices.Contains(co, so.user) {
				p.h.writeDroppable(so, frame)
			}
		}
	}
}

// presenceTime is the API's time format (RFC 3339, UTC, microseconds).
const presenceTime = "2006-01-02T15:04:05.000000Z"
