// Package realtime delivers a room's events to its live connections: the
// fan-out that follows the log once the read model shows it, the room
// registry with its slow-connection policy, the catch-up of a connection
// that resumes from a position, and typing notices and session ends that
// travel between processes over a bus.
//
// It knows nothing of WebSocket libraries or databases: a connection is a
// Conn, the bus is a Bus, the log is a Log, and rendering a frame is the
// caller's Render.
package realtime

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// Close codes of connections that end on the server's decision (RFC 6455).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	ClosePolicyViolation = 1008
	CloseTryAgainLater   = 1013
	// CloseResumeTooOld: the position a connection resumed from is more
	// than Config.ResumeMax of its room's events behind.
	CloseResumeTooOld = 4002
)

// Conn is one connection as the hub needs it. Write queues a frame and
// must not block; it may fail when the connection's queue is full or the
// connection is closed. Close queues a close frame behind those written.
type Conn interface {
	Write(frame []byte) error
	Close(code int, reason string) error
	IsClosed() bool
}

// Bus carries typing notices between processes (this one
// included). Subscribe's onReady runs each time the channel is listened to
// (first time and after every reconnect): notices sent meanwhile are lost.
// Both callbacks must return quickly.
type Bus interface {
	Publish(ctx context.Context, channel, payload string) error
	Subscribe(channel string, onMessage func(payload string), onReady func())
}

// Log is the part of the event store the hub reads.
type Log interface {
	// ReadAll reads a short gap of the log when a connection resumes;
	// ReadStream reads a room's streams past that (the global log is never
	// scanned for one room).
	ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error)
	ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error)
	SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error
}

// Watermark tells how far the read model is projected.
type Watermark interface {
	Position() eventstore.Position
	Wait(ctx context.Context, p eventstore.Position) error
	Changed() <-chan struct{}
}

// Render renders the frame of a room event for connections whose absolute
// URLs start with base, and tells its room; ok is false for an event no
// connection hears.
type Render func(e eventstore.RecordedEvent, base string) (frame []byte, room int64, ok bool)

// ControlChannel carries typing notices between processes.
const ControlChannel = "evchat_ws"

const (
	socketBacklog   = 128  // frames queued to one connection before it is dropped as too slow
	resumeBuffer    = 4096 // live frames a resuming connection may hold back before it is dropped
	framesPerSecond = 20   // inbound frames per connection, with a burst of twice that
)

// Config is what a Hub is given.
type Config struct {
	Log       Log
	Watermark Watermark
	// Bus carries control notices between processes; nil: this process only.
	Bus    Bus
	Render Render
	Logger *slog.Logger
	// WriteWait is how long a catching-up connection may take no frame
	// before it is dropped (default 5s).
	WriteWait time.Duration
	// Members returns the members of a room now (a resume reads their
	// receipt streams); nil: only readers seen joining or leaving.
	Members func(ctx context.Context, room int64) ([]int64, error)
	// ResumeMax is how many of its room's events a resuming connection
	// may be behind (default DefaultResumeMax); more is refused with a
	// resume_too_old error frame and close code CloseResumeTooOld.
	ResumeMax int
	// TypingInterval is how often a user's typing notices reach a room
	// (default DefaultTypingInterval); Clock tells the time (default the
	// system's).
	TypingInterval time.Duration
	Clock          Clock
	// PerUser bounds one user's connections on this process (default
	// DefaultPerUser): the next closes with 1008 "too many sockets". Max
	// bounds all connections of this process (default DefaultMax): the
	// next closes with 1013 "too many sockets on this server".
	PerUser, Max int
	// OnDrop, when set, is called each time a connection is dropped as too
	// slow (metrics). It must not block.
	OnDrop func()

	// Delivered, when set, is told each time a message's frame is queued
	// to a connection of one of its receivers (delivery receipts). It must
	// not block.
	Delivered func(room, user, messageID int64)
	// Presence, when set, follows which users have connections, across
	// processes (presence.go); PresenceDebounce is how long a user's last
	// connection may be gone before they count as offline (default
	// DefaultPresenceDebounce).
	Presence         PresenceStore
	PresenceDebounce time.Duration
	// PresenceHeartbeat is how often this process tells Presence it is
	// alive (default 10 s).
	PresenceHeartbeat time.Duration
	// CoMembers returns the users who share a room with a user (presence
	// frames go to their connections).
	CoMembers func(ctx context.Context, user int64) ([]int64, error)
}

// Hub fans room events out to the connections of this process.
type Hub struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	rooms map[int64]map[*Session]struct{}
	all   map[*Session]struct{}
	users map[int64]int // connections per user

	lagMu      sync.Mutex
	advancedAt time.Time

	listening     chan struct{}
	listeningOnce sync.Once

	// typingOut gates the notices this process publishes, typingIn those
	// it hears (from every process).
	typingOut, typingIn *typingGate

	// resumeEnded, set by tests before any session starts, hears each
	// resume end.
	resumeEnded func(*Session)

	// presence follows which users are online (presence.go).
	presence *presence
}

// New returns a hub; Run starts its fan-out and its bus listener.
func New(cfg Config) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 5 * time.Second
	}
	if cfg.Bus == nil {
		cfg.Bus = &localBus{}
	}
	if cfg.ResumeMax <= 0 {
		cfg.ResumeMax = DefaultResumeMax
	}
	if cfg.TypingInterval <= 0 {
		cfg.TypingInterval = DefaultTypingInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.PerUser <= 0 {
		cfg.PerUser = DefaultPerUser
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.PresenceDebounce <= 0 {
		cfg.PresenceDebounce = DefaultPresenceDebounce
	}
	if cfg.PresenceHeartbeat <= 0 {
		cfg.PresenceHeartbeat = heartbeatEvery
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, rooms: map[int64]map[*Session]struct{}{}, all: map[*Session]struct{}{}, users: map[int64]int{},
		advancedAt: time.Now(), listening: make(chan struct{}),
		typingOut: newTypingGate(cfg.Clock, cfg.TypingInterval), typingIn: newTypingGate(cfg.Clock, cfg.TypingInterval)}
	h.presence = newPresence(h)
	return h
}

// Listening is closed once the bus is listened to.
func (h *Hub) Listening() <-chan struct{} { return h.listening }

// Open returns the number of sessions registered and not yet removed.
func (h *Hub) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.all)
}

// add registers a session, unless its user or this process has as many
// connections as allowed: then it returns the close to refuse it with.
func (h *Hub) add(so *Session) *closeMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.users[so.user] >= h.cfg.PerUser:
		return tooManyForUserClose
	case len(h.all) >= h.cfg.Max:
		return tooManyClose
	}
	h.users[so.user]++
	if h.rooms[so.room] == nil {
		h.rooms[so.room] = map[*Session]struct{}{}
	}
	h.rooms[so.room][so] = struct{}{}
	h.all[so] = struct{}{}
	return nil
}

// Remove takes a session out of its room: its connection has ended.
func (h *Hub) Remove(so *Session) {
	so.stop() // a resume reading the log stops reading
	if so.leavePresence() {
		h.presence.down(so.user)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.all[so]; !ok {
		return
	}
	delete(h.all, so)
	if h.users[so.user]--; h.users[so.user] <= 0 {
		delete(h.users, so.user)
	}
	if r := h.rooms[so.room]; r != nil {
		delete(r, so)
		if len(r) == 0 {
			delete(h.rooms, so.room)
		}
	}
	so.signalDrained() // a resume waiting for room stops waiting
}

// roomSessions returns the sessions of a room now.
func (h *Hub) roomSessions(room int64) []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Session, 0, len(h.rooms[room]))
	for so := range h.rooms[room] {
		out = append(out, so)
	}
	return out
}

// Run fans the log out to sessions, starting after from, until ctx ends.
// from must be at or before the watermark any session can have seen when it
// starts catching up (the caller reads it before serving), or an event
// between the two would reach neither the session's catch-up nor fan-out.
func (h *Hub) Run(ctx context.Context, from eventstore.Position) error {
	h.cfg.Bus.Subscribe(ControlChannel, h.onControl, h.onBusReady)
	go h.trackLag(ctx)
	// Presence tells the other processes this one is gone before Run
	// returns (the caller closes the database after).
	presenceDone := make(chan struct{})
	go func() {
		defer close(presenceDone)
		h.presence.run(ctx)
	}()
	defer func() { <-presenceDone }()
	for {
		err := h.follow(ctx, &from)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.log.Error("websocket fan-out stopped, restarting", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (h *Hub) follow(ctx context.Context, from *eventstore.Position) error {
	return h.cfg.Log.SubscribeAll(ctx, *from, func(ctx context.Context, d eventstore.Delivery) error {
		if len(d.Events) == 0 {
			return nil
		}
		// Each only after the read model shows it: event by event, not
		// the whole delivery at once, so that frames go out as the
		// projector commits (a delivery may span several of its
		// transactions).
		for _, e := range d.Events {
			if err := h.cfg.Watermark.Wait(ctx, e.Position); err != nil {
				return err
			}
			h.broadcast(e)
			*from = e.Position // a restart goes on from here
		}
		return nil
	})
}

func (h *Hub) broadcast(e eventstore.RecordedEvent) {
	var room int64
	if !parseRoom(e.Stream, &room) {
		return
	}
	sessions := h.roomSessions(room)
	if len(sessions) == 0 {
		return
	}
	leaver, joiner := membershipChange(e)
	msg := messageSent(e)
	frames := map[string][]byte{}
	for _, so := range sessions {
		f, ok := frames[so.base]
		if !ok {
			f, _, ok = h.cfg.Render(e, so.base)
			if !ok {
				return
			}
			frames[so.base] = f
		}
		h.deliver(so, positioned{pos: e.Position, frame: f, leaver: leaver, joiner: joiner, msg: msg})
	}
	if e.Type == domain.TypeMemberLeft && leaver != 0 {
		for _, so := range sessions {
			if so.user == leaver {
				h.closeAfterFrames(so, leftClose)
			}
		}
	}
}

// parseRoom reads the room id of conversation-<id>, receipts-<id>-<reader>
// and deliveries-<id>-<receiver> streams.
func parseRoom(stream string, room *int64) bool {
	var rest string
	switch {
	case strings.HasPrefix(stream, "conversation-"):
		rest = stream[len("conversation-"):]
	case strings.HasPrefix(stream, "receipts-"):
		rest, _, _ = strings.Cut(stream[len("receipts-"):], "-")
	case strings.HasPrefix(stream, "deliveries-"):
		rest, _, _ = strings.Cut(stream[len("deliveries-"):], "-")
	default:
		return false
	}
	var n int64
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int64(r-'0')
	}
	*room = n
	return n > 0
}

// trackLag remembers when the watermark last moved, for readiness.
func (h *Hub) trackLag(ctx context.Context) {
	for {
		ch := h.cfg.Watermark.Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
			h.lagMu.Lock()
			h.advancedAt = time.Now()
			h.lagMu.Unlock()
		}
	}
}

// ProjectionLag is how long the read model has been behind head (0 when caught up).
func (h *Hub) ProjectionLag(head eventstore.Position) time.Duration {
	if !h.cfg.Watermark.Position().Less(head) {
		return 0
	}
	h.lagMu.Lock()
	defer h.lagMu.Unlock()
	return time.Since(h.advancedAt)
}

// Has reports whether a session is registered: started and not removed.
func (h *Hub) Has(so *Session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.all[so]
	return ok
}
