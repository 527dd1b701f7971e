package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// control is a notice on the bus.
type control struct {
	Kind     string `json:"kind"` // "typing"
	Room     int64  `json:"room,omitempty"`
	User     int64  `json:"user,omitempty"`
	IsTyping bool   `json:"is_typing,omitempty"`
	// Presence notices (presence.go).
	Online   bool       `json:"online,omitempty"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// Typing tells the room's sessions on every process, over the bus. Typing
// notices are ephemeral: they never enter the log. Per user and room, not
// per session, at most one "typing" per Config.TypingInterval goes out
// (and one "stopped" after it); the rest are dropped without an error.
func (h *Hub) Typing(ctx context.Context, so *Session, isTyping bool) error {
	if !h.typingOut.pass(so.room, so.user, isTyping) {
		return nil
	}
	return h.publish(ctx, control{Kind: "typing", Room: so.room, User: so.user, IsTyping: isTyping})
}

func (h *Hub) publish(ctx context.Context, c control) error {
	b, _ := json.Marshal(c)
	if err := h.cfg.Bus.Publish(ctx, ControlChannel, string(b)); err != nil {
		return fmt.Errorf("publish %s notice: %w", c.Kind, err)
	}
	return nil
}

// CloseSession closes this process's connections of a login session that
// ended (a logout: package auth tells every process).
func (h *Hub) CloseSession(session uuid.UUID) {
	h.mu.Lock()
	all := slices.Collect(maps.Keys(h.all))
	h.mu.Unlock()
	for _, so := range all {
		if so.loginSession() != session {
			continue
		}
		_ = so.conn.Close(loggedOutClose.code, loggedOutClose.reason)
	}
}

func (h *Hub) onBusReady() {
	h.listeningOnce.Do(func() { close(h.listening) })
}

// onControl handles a notice from any process (this one included).
func (h *Hub) onControl(payload string) {
	var c control
	if json.Unmarshal([]byte(payload), &c) != nil {
		return
	}
	switch c.Kind {
	case "presence":
		h.presence.heard(c)
	case "typing":
		// Every process gates what it hears too: a user typing from
		// sockets on many processes still reaches a room at the rate of one.
		if !h.typingIn.pass(c.Room, c.User, c.IsTyping) {
			return
		}
		frame, _ := json.Marshal(map[string]any{"type": "typing", "conversation": c.Room, "sender": c.User, "is_typing": c.IsTyping})
		// Typing is ephemeral and has no place in the log's order, so a
		// session that is still catching up gets it at once too.
		for _, so := range h.roomSessions(c.Room) {
			if so.user != c.User {
				h.writeDroppable(so, frame)
			}
		}
	}
}

// localBus is the bus of a hub given none: notices reach this process only.
type localBus struct {
	mu   sync.Mutex
	subs map[string][]func(string)
}

func (b *localBus) Publish(_ context.Context, channel, payload string) error {
	b.mu.Lock()
	subs := b.subs[channel]
	b.mu.Unlock()
	for _, s := range subs {
		s(payload)
	}
	return nil
}

func (b *localBus) Subscribe(channel string, onMessage func(string), onReady func()) {
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[string][]func(string){}
	}
	b.subs[channel] = append(b.subs[channel], onMessage)
	b.mu.Unlock()
	if onReady != nil {
		onReady()
	}
}
