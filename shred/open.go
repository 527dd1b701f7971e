package shred

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// ReadStream reads from the decorated store and opens the events.
func (s *Store) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	evs, err := s.readStream(ctx, stream, dir, from, count)
	if err != nil {
		return evs, err
	}
	return evs, s.open(ctx, evs)
}

// ReadStreams reads from the decorated store and opens the events. Reads of
// username streams, whose stored names differ, go one by one.
func (s *Store) ReadStreams(ctx context.Context, reads []eventstore.StreamRead) ([][]eventstore.RecordedEvent, error) {
	var out [][]eventstore.RecordedEvent
	if slices.ContainsFunc(reads, func(rd eventstore.StreamRead) bool { _, hashed := s.hashedStream(rd.Stream); return hashed }) {
		out = make([][]eventstore.RecordedEvent, len(reads))
		for i, rd := range reads {
			evs, err := s.readStream(ctx, rd.Stream, rd.Dir, rd.From, rd.Count)
			if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
				return nil, err
			}
			out[i] = evs
		}
	} else {
		var err error
		if out, err = eventstore.ReadStreams(ctx, s.inner, reads); err != nil {
			return nil, err
		}
	}
	for _, evs := range out {
		if err := s.open(ctx, evs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReadAll reads from the decorated store and opens the events.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	evs, err := s.inner.ReadAll(ctx, from, count)
	if err != nil {
		return evs, err
	}
	return evs, s.open(ctx, evs)
}

// SubscribeAll subscribes to the decorated store and opens each delivery's
// events before handle sees them.
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error {
	return s.inner.SubscribeAll(ctx, from, func(ctx context.Context, d eventstore.Delivery) error {
		if err := s.open(ctx, d.Events); err != nil {
			return err
		}
		return handle(ctx, d)
	})
}

// Head is the decorated store's.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) { return s.inner.Head(ctx) }

// Ping is the decorated store's.
func (s *Store) Ping(ctx context.Context) error { return s.inner.Ping(ctx) }

// personalEvent is an event of evs with personal data, located.
type personalEvent struct {
	i     int
	p     domain.Personal
	m     members
	owner int64
}

// ErrKeyMissing is a sealed field whose owner has no key and is not marked
// forgotten: the key table was lost or restored from before the key was
// made. Reads fail rather than show the data as forgotten (a projection
// would make that permanent in the read model): restore the key table.
var ErrKeyMissing = errors.New("the key of a sealed field is missing (restore the user_keys table)")

// open replaces, in place, the personal fields of evs by their plaintext,
// or by their placeholders when their owner is forgotten (sealed or not).
func (s *Store) open(ctx context.Context, evs []eventstore.RecordedEvent) error {
	var todo []personalEvent
	var owners []int64
	for i := range evs {
		p, ok := s.table[evs[i].Type]
		if !ok {
			continue
		}
		m, ok := locate(evs[i].Data, p)
		if !ok {
			continue // not ours to judge: the decoder reports it
		}
		owner, ok := ownerOf(evs[i].Data, m, p)
		if !ok {
			continue
		}
		todo = append(todo, personalEvent{i: i, p: p, m: m, owner: owner})
		owners = append(owners, owner)
	}
	if len(todo) == 0 {
		return nil
	}
	states, err := s.states(ctx, owners)
	if err != nil {
		return err
	}
	// A sealed field whose owner this process knew without a key: the key
	// was made since (by another process, committed before the append).
	var stale []int64
	for _, pe := range todo {
		if c := states[pe.owner]; c.aead == nil && !c.state.Forgotten && hasSealed(evs[pe.i].Data, pe) {
			stale = append(stale, pe.owner)
		}
	}
	if len(stale) > 0 {
		for _, u := range stale {
			s.Invalidate(u)
		}
		if states, err = s.states(ctx, owners); err != nil {
			return err
		}
	}
	for _, pe := range todo {
		e := &evs[pe.i]
		c := states[pe.owner]
		var edits []edit
		for _, f := range pe.p.Fields {
			at, ok := pe.m.get(f.Name)
			if !ok || isNullValue(e.Data[at.Start:at.End]) {
				continue
			}
			box, isSealed := sealedBox(e.Data[at.Start:at.End])
			switch {
			case isSealed && c.aead != nil:
				plain, err := open(c.aead, additional(pe.owner, e.Type, f.Name), box)
				if err != nil {
					return fmt.Errorf("open %s.%s of event %s: %w", e.Type, f.Name, e.ID, err)
				}
				edits = append(edits, edit{at: at, value: plain})
			case isSealed && !c.state.Forgotten:
				return fmt.Errorf("open %s.%s of event %s: user %d: %w", e.Type, f.Name, e.ID, pe.owner, ErrKeyMissing)
			case c.state.Forgotten:
				edits = append(edits, edit{at: at, value: []byte(f.Forgotten)})
			}
		}
		if len(edits) > 0 {
			e.Data = splice(e.Data, edits)
		}
	}
	return nil
}

// Inner is the decorated store: the log as stored, personal data sealed.
func (s *Store) Inner() eventstore.Store { return s.inner }

// hasSealed reports whether any personal field of pe is sealed.
func hasSealed(data []byte, pe personalEvent) bool {
	for _, f := range pe.p.Fields {
		if at, ok := pe.m.get(f.Name); ok {
			if _, ok := sealedBox(data[at.Start:at.End]); ok {
				return true
			}
		}
	}
	return false
}
