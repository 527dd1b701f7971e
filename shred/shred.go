// Package shred keeps personal data in the event log forgettable
// (crypto-shredding). Store decorates an event store: on Append it seals
// the personal fields of the events that domain.PersonalData declares with
// their owner's key (AES-256-GCM, a random nonce, bound to the owner, the
// event type and the member); on every read (ReadStream, ReadAll,
// SubscribeAll) it opens them. Once a user is forgotten their key is gone:
// their sealed fields, and the plaintext fields of events written before
// this package existed, read as the declared placeholders. Everything above
// the store (commands, projections, rebuilds, audits, WebSocket resume)
// sees plaintext or placeholders and knows nothing of keys.
//
// Stream names hold no personal data but one: username-<name>, which the
// shredder stores under a keyed hash of the name (streams.go). Event
// metadata is not personal by declaration (ids, times, request ids).
package shred

import (
	"context"
	"crypto/cipher"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// KeyState is what the key store holds of one user: their key, or that they
// are forgotten, or (both zero) nothing yet.
type KeyState struct {
	Key       []byte
	Forgotten bool
}

// Keys is the key store, outside the log.
type Keys interface {
	// Load returns the state of users' keys; a user missing from the map
	// has no key and is not forgotten.
	Load(ctx context.Context, users []int64) (map[int64]KeyState, error)
	// Create stores key as user's unless they have one or are forgotten,
	// durably before it returns, and returns the user's state then.
	Create(ctx context.Context, user int64, key []byte) (KeyState, error)
}

// Bus carries forget notices between processes (postgres/notifier).
type Bus interface {
	Subscribe(channel string, onMessage func(payload string), onReady func())
}

// Channel carries the id of each forgotten user to every process, which
// drops its cached key. The key store notifies it when it forgets.
const Channel = "evchat_user_forgotten"

// ErrForgotten refuses to write personal data of a forgotten user (their
// request raced their forgetting).
var ErrForgotten = domain.Errorf(domain.KindUnauthorized, "This user no longer exists")

// Options tune a Store.
type Options struct {
	Logger *slog.Logger
	// MaxCached bounds the users whose key state is cached (default
	// 100000); past it the cache starts over.
	MaxCached int
	// StreamKey, when set, names username reservation streams by a keyed
	// hash of the name instead of the name (see streams.go).
	StreamKey []byte
	// KeyCreated, for tests, runs after a new key is stored and before
	// the append that needs it; an error aborts the append (a crash).
	KeyCreated func(ctx context.Context, user int64) error
}

// Store is an eventstore.Store that seals and opens personal data.
type Store struct {
	inner eventstore.Store
	keys  Keys
	table map[string]domain.Personal
	opts  Options

	mu    sync.Mutex
	gen   uint64 // bumped by every invalidation: a load begun before it is not cached
	cache map[int64]cached
}

type cached struct {
	state KeyState
	aead  cipher.AEAD
}

var (
	_ eventstore.Store         = (*Store)(nil)
	_ eventstore.StreamsReader = (*Store)(nil)
)

// New decorates inner with the keys of keys.
func New(inner eventstore.Store, keys Keys, o Options) *Store {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 100_000
	}
	return &Store{inner: inner, keys: keys, table: domain.PersonalData(), opts: o, cache: map[int64]cached{}}
}

// Listen drops the cached state of each user another process forgets, and
// all of it when the bus reconnects (notices may have been missed).
func (s *Store) Listen(bus Bus) {
	bus.Subscribe(Channel, func(payload string) {
		if id, err := strconv.ParseInt(payload, 10, 64); err == nil {
			s.Invalidate(id)
		}
	}, s.Reset)
}

// Invalidate drops the cached state of user: the key store is read again.
func (s *Store) Invalidate(user int64) {
	s.mu.Lock()
	s.gen++
	delete(s.cache, user)
	s.mu.Unlock()
}

// Reset drops every cached state.
func (s *Store) Reset() {
	s.mu.Lock()
	s.gen++
	s.cache = map[int64]cached{}
	s.mu.Unlock()
}

func (s *Store) remember(gen uint64, states map[int64]KeyState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return nil // invalidated meanwhile: use the answer, do not keep it
	}
	if len(s.cache)+len(states) > s.opts.MaxCached {
		s.cache = map[int64]cached{}
	}
	for u, st := range states {
		c := cached{state: st}
		if st.Key != nil {
			a, err := newAEAD(st.Key)
			if err != nil {
				return fmt.Errorf("key of user %d: %w", u, err)
			}
			c.aead = a
		}
		s.cache[u] = c
	}
	return nil
}

// states returns the key state of every user in users, reading those not
// cached from the key store in one call.
func (s *Store) states(ctx context.Context, users []int64) (map[int64]cached, error) {
	out := make(map[int64]cached, len(users))
	var missing []int64
	s.mu.Lock()
	gen := s.gen
	for _, u := range users {
		if c, ok := s.cache[u]; ok {
			out[u] = c
		} else if !slices.Contains(missing, u) {
			missing = append(missing, u)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	loaded, err := s.keys.Load(ctx, missing)
	if err != nil {
		return nil, fmt.Errorf("load user keys: %w", err)
	}
	all := make(map[int64]KeyState, len(missing))
	for _, u := range missing {
		all[u] = loaded[u]
	}
	if err := s.remember(gen, all); err != nil {
		return nil, err
	}
	for u, st := range all {
		c := cached{state: st}
		if st.Key != nil {
			if c.aead, err = newAEAD(st.Key); err != nil {
				return nil, err
			}
		}
		out[u] = c
	}
	return out, nil
}

// sealingKey returns the cipher of user's key, creating and storing the
// key first when they have none.
func (s *Store) sealingKey(ctx context.Context, user int64) (cipher.AEAD, error) {
	st, err := s.states(ctx, []int64{user})
	if err != nil {
		return nil, err
	}
	c := st[user]
	if c.state.Forgotten {
		return nil, ErrForgotten
	}
	if c.aead != nil {
		return c.aead, nil
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	// Stored (committed) before any event sealed with it is appended: a
	// crash in between leaves a key with no events, which is harmless.
	state, err := s.keys.Create(ctx, user, key)
	if err != nil {
		return nil, fmt.Errorf("create key of user %d: %w", user, err)
	}
	if state.Forgotten {
		return nil, ErrForgotten
	}
	if s.opts.KeyCreated != nil {
		if err := s.opts.KeyCreated(ctx, user); err != nil {
			return nil, err
		}
	}
	if err := s.remember(gen, map[int64]KeyState{user: state}); err != nil {
		return nil, err
	}
	return newAEAD(state.Key)
}

// Append seals the personal fields of events, then appends them to the
// decorated store. It returns ErrForgotten for personal data of a
// forgotten user, and the decorated store's errors as they are.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	out, copied := events, false
	for i, e := range events {
		p, ok := s.table[e.Type]
		if !ok {
			continue
		}
		data, err := s.sealEvent(ctx, e.Type, p, e.Data)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		if data == nil {
			continue
		}
		if !copied {
			out, copied = slices.Clone(events), true // the caller's slice stays as it was
		}
		out[i].Data = data
	}
	stream, err := s.appendStream(ctx, stream, expected)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.inner.Append(ctx, stream, expected, out...)
}

// sealEvent returns the payload with its personal fields sealed, or nil
// when it holds none to seal.
func (s *Store) sealEvent(ctx context.Context, eventType string, p domain.Personal, data []byte) ([]byte, error) {
	m, ok := locate(data, p)
	if !ok {
		return nil, fmt.Errorf("seal %s: the payload is not a JSON object this package reads", eventType)
	}
	var todo []string
	for _, f := range p.Fields {
		if at, ok := m.get(f.Name); ok && !isNullValue(data[at.Start:at.End]) {
			if _, already := sealedBox(data[at.Start:at.End]); !already {
				todo = append(todo, f.Name)
			}
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	owner, ok := ownerOf(data, m, p)
	if !ok {
		return nil, fmt.Errorf("seal %s: no owner in %v", eventType, p.Owner)
	}
	aead, err := s.sealingKey(ctx, owner)
	if err != nil {
		return nil, err
	}
	edits := make([]edit, 0, len(todo))
	for _, name := range todo {
		at, _ := m.get(name)
		v, err := seal(aead, additional(owner, eventType, name), data[at.Start:at.End])
		if err != nil {
			return nil, err
		}
		edits = append(edits, edit{at: at, value: v})
	}
	return splice(data, edits), nil
}

// ownerOf returns the user id in the first owner member present.
func ownerOf(data []byte, m members, p domain.Personal) (int64, bool) {
	for _, name := range p.Owner {
		if id, ok := memberInt(data, m, name); ok && id != 0 {
			return id, true
		}
	}
	return 0, false
}
