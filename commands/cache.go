package commands

import (
	"container/list"
	"sync"
)

// stateCache keeps aggregate state by stream and revision, least recently
// used out first, so loading an aggregate reads only the events after the
// cached revision: a command costs the same in a room of 100,000 messages as
// in an empty one.
type stateCache[S any] struct {
	mu    sync.Mutex
	limit int
	order *list.List // front: most recent
	items map[string]*list.Element
}

type cacheEntry[S any] struct {
	stream string
	state  S
	rev    int64
}

func newStateCache[S any](limit int) *stateCache[S] {
	return &stateCache[S]{limit: limit, order: list.New(), items: map[string]*list.Element{}}
}

func (c *stateCache[S]) get(stream string) (S, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[stream]
	if !ok {
		var zero S
		return zero, 0, false
	}
	c.order.MoveToFront(el)
	e := el.Value.(*cacheEntry[S])
	return e.state, e.rev, true
}

// put stores state at rev.
func (c *stateCache[S]) put(stream string, state S, rev int64) { c.store(stream, state, rev, false) }

// putIfNewer stores state unless a newer revision is cached.
func (c *stateCache[S]) putIfNewer(stream string, state S, rev int64) {
	c.store(stream, state, rev, true)
}

func (c *stateCache[S]) store(stream string, state S, rev int64, onlyNewer bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[stream]; ok {
		e := el.Value.(*cacheEntry[S])
		if onlyNewer && e.rev > rev {
			return
		}
		e.state, e.rev = state, rev
		c.order.MoveToFront(el)
		return
	}
	c.items[stream] = c.order.PushFront(&cacheEntry[S]{stream: stream, state: state, rev: rev})
	for c.order.Len() > c.limit {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry[S]).stream)
	}
}

func (c *stateCache[S]) drop(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[stream]; ok {
		c.order.Remove(el)
		delete(c.items, stream)
	}
}

// streamLocks serialises commands per stream inside this process, so many
// senders in one hot room queue up instead of conflicting; conflicts with
// other processes are still caught by the expected revision.
type streamLocks struct {
	mu    sync.Mutex
	locks map[string]*streamLock
}

type streamLock struct {
	mu   sync.Mutex
	refs int
}

func newStreamLocks() *streamLocks { return &streamLocks{locks: map[string]*streamLock{}} }

func (l *streamLocks) lock(stream string) (unlock func()) {
	l.mu.Lock()
	sl, ok := l.locks[stream]
	if !ok {
		sl = &streamLock{}
		l.locks[stream] = sl
	}
	sl.refs++
	l.mu.Unlock()
	sl.mu.Lock()
	return func() {
		sl.mu.Unlock()
		l.mu.Lock()
		sl.refs--
		if sl.refs == 0 {
			delete(l.locks, stream)
		}
		l.mu.Unlock()
	}
}
