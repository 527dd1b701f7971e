package esdbtest

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// record is one event of the in-memory log. Records are immutable once
// published, so readers may use them without the lock.
type record struct {
	id          uuid.UUID
	stream      string
	revision    uint64
	position    uint64 // commit and prepare position: the record's log offset
	eventType   string
	contentType string
	created     string // .NET ticks (100 ns) since the Unix epoch
	data        []byte
	metadata    []byte
}

// proposed is an event as it arrives in an append.
type proposed struct {
	id          uuid.UUID
	eventType   string
	contentType string
	data        []byte
	metadata    []byte
}

// expectation mirrors the expected_stream_revision oneof of an append.
type expectation struct {
	kind     expectKind
	revision uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectRevision
)

// Versions as the server's storage layer counts them: -1 is "no stream",
// -2 "any" and -4 "stream exists"; these are the values the real server's
// commit check works with.
const (
	versionNoStream     int64 = -1
	versionAny          int64 = -2
	versionStreamExists int64 = -4
)

func (e expectation) version() int64 {
	switch e.kind {
	case expectNoStream:
		return versionNoStream
	case expectStreamExists:
		return versionStreamExists
	case expectRevision:
		return int64(e.revision)
	}
	return versionAny
}

// appendResult is what an append decided.
type appendResult struct {
	ok bool
	// On success: the revision and log position of the last event of the
	// append (or, for an idempotent retry, of the original append's last event).
	lastRevision int64 // -1 when nothing was written to a new stream
	position     uint64
	hasPosition  bool
	// On failure: the stream's current revision (-1: no stream).
	current int64
}

// memlog is the log: every record in position order, the streams as
// slices of the same records, and an index of event ids.
type memlog struct {
	mu      sync.Mutex
	all     []*record
	streams map[string][]*record
	ids     map[uuid.UUID]*record
	next    uint64        // log offset of the next record
	changed chan struct{} // closed and replaced whenever records are published
}

// firstPosition leaves room for the records a fresh database starts with,
// so that no event sits at position 0 (the start of $all).
const firstPosition = 1 << 10

func newMemlog() *memlog {
	return &memlog{
		streams: map[string][]*record{},
		ids:     map[uuid.UUID]*record{},
		next:    firstPosition,
		changed: make(chan struct{}),
	}
}

// recordSize is a plausible on-disk size, so positions advance like byte offsets.
func recordSize(stream string, p proposed) uint64 {
	return uint64(96 + len(stream) + len(p.eventType) + len(p.data) + len(p.metadata))
}

func ticksNow() string {
	return strconv.FormatInt(time.Now().UnixNano()/100, 10)
}

// append runs the commit check of the real server and, when it says so,
// assigns revisions and positions and publishes the events, all under one
// lock, so $all readers see events exactly in position order.
func (l *memlog) append(stream string, exp expectation, events []proposed, noIdempotentPosition bool) appendResult {
	l.mu.Lock()
	defer l.mu.Unlock()

	existing := l.streams[stream]
	current := int64(len(existing)) - 1
	expected := exp.version()

	if len(events) == 0 {
		return appendResult{ok: true, lastRevision: current}
	}

	idem := func(last *record) appendResult {
		r := appendResult{ok: true, lastRevision: int64(last.revision)}
		if !noIdempotentPosition {
			r.position, r.hasPosition = last.position, true
		}
		return r
	}
	wrong := appendResult{current: current}

	if expected == versionStreamExists && current < 0 {
		return wrong
	}
	switch {
	case expected == versionAny || expected == versionStreamExists:
		// Best-effort idempotency by event id, like the server's cache of
		// recently committed ids: all ids known in this stream is a retry;
		// a first id unknown is a new write; anything else is corrupted
		// idempotency, which the server answers as a wrong expected version.
		var last *record
		for i, p := range events {
			r, ok := l.ids[p.id]
			if !ok || r.stream != stream {
				if i == 0 {
					last = nil
					break
				}
				return wrong
			}
			last = r
		}
		if last != nil {
			return idem(last)
		}
	case expected < current:
		// A retry of events that are already in the stream after expected.
		for i, p := range events {
			n := expected + 1 + int64(i)
			if n > current || existing[n].id != p.id {
				return wrong
			}
		}
		return idem(existing[expected+int64(len(events))])
	case expected > current:
		return wrong
	}

	created := ticksNow()
	revision := uint64(current + 1)
	var last *record
	for _, p := range events {
		r := &record{
			id: p.id, stream: stream, revision: revision, position: l.next,
			eventType: p.eventType, contentType: p.contentType, created: created,
			data: p.data, metadata: p.metadata,
		}
		l.next += recordSize(stream, p)
		revision++
		l.all = append(l.all, r)
		existing = append(existing, r)
		if _, dup := l.ids[p.id]; !dup {
			l.ids[p.id] = r
		}
		last = r
	}
	l.streams[stream] = existing
	close(l.changed)
	l.changed = make(chan struct{})
	return appendResult{ok: true, lastRevision: int64(last.revision), position: last.position, hasPosition: true}
}

// snapshot returns the records of $all (stream == "") or of one stream, and
// a channel closed at the next publication. The slice must not be modified.
func (l *memlog) snapshot(stream string, all bool) ([]*record, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if all {
		return l.all[:len(l.all):len(l.all)], true, l.changed
	}
	recs, ok := l.streams[stream]
	return recs[:len(recs):len(recs)], ok, l.changed
}

// searchAll returns the index of the first record at or after position.
func searchAll(recs []*record, position uint64) int {
	return sort.Search(len(recs), func(i int) bool { return recs[i].position >= position })
}
