// Package history answers from the log how things stood at a moment of the
// past (the API's ?as_of=): a room's messages, a user's rooms and one
// message, with the members, names, texts, reactions and receipts of then.
//
// The read model only knows the present, so these answers are computed
// from the log. To stay fast in a long room they read it through an
// index of blocks (Blocks): a stream's events are cut into blocks of
// BlockSize revisions, and each complete block records where its last
// event lies in the log, when it was recorded and, for a room, the room's
// state after it. A moment is found with one look-up of the index and a
// read of at most about one block; a page then reads back from there only
// as far as its messages go. The index is filled by the readers
// themselves, a block at a time as they pass: the log is append-only, so a
// complete block never changes.
//
// The log is read through the shredding decorator like every other reader:
// a forgotten user's texts and names read as placeholders here too.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// BlockSize is the number of revisions of a stream a block of the index
// covers: finding a moment reads at most about this many events.
const BlockSize = 128

// ErrBadCut is returned by ParseCut for text that is neither a time nor a
// log position.
var ErrBadCut = errors.New("as_of must be an RFC 3339 time or a log position")

// Cut is a moment of the past: the events recorded at or before a time, or
// at or before a position of the log.
type Cut struct {
	at    time.Time
	pos   eventstore.Position
	byPos bool
	text  string
}

// ParseCut reads an RFC 3339 time (2023-12-01T12:00:00.123456Z) or a log
// position as the API hands them out (the X-Chat-Position header, a
// frame's position).
func ParseCut(s string) (Cut, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Cut{at: t.UTC(), text: s}, nil
	}
	if p, err := eventstore.ParsePosition(s); err == nil {
		return Cut{pos: p, byPos: true, text: s}, nil
	}
	return Cut{}, ErrBadCut
}

// AtTime is the cut at a time.
func AtTime(t time.Time) Cut {
	t = t.UTC()
	return Cut{at: t, text: t.Format(time.RFC3339Nano)}
}

// AtPosition is the cut at a log position.
func AtPosition(p eventstore.Position) Cut { return Cut{pos: p, byPos: true, text: p.String()} }

// String is the cut as it was written.
func (c Cut) String() string { return c.text }

// Time returns the cut's time, when it is one.
func (c Cut) Time() (time.Time, bool) { return c.at, !c.byPos }

// Position returns the cut's log position, when it is one.
func (c Cut) Position() (eventstore.Position, bool) { return c.pos, c.byPos }

// includes reports whether an event recorded at pos and time at lies at
// or before the cut.
func (c Cut) includes(pos eventstore.Position, at time.Time) bool {
	if c.byPos {
		return !c.pos.Less(pos)
	}
	return !at.After(c.at)
}

// Block is a complete block of a stream in the index: the events of
// revisions Index*BlockSize to (Index+1)*BlockSize-1.
type Block struct {
	Stream string
	Index  int64
	// LastID, Last and LastAt are the id, log position and time of the
	// block's last event. A block whose LastID is not the log's is from
	// another log and is dropped.
	LastID uuid.UUID
	Last   eventstore.Position
	LastAt time.Time
	// State is a room's state after the block, as Blocks.Save stored it
	// or, from Blocks.Last, the state in force after it (nil: none, for
	// streams that are not rooms).
	State json.RawMessage
	// Marks are where each of the block's events lies in the log and when
	// it was recorded, in revision order (Save stores them; Last does not
	// return them).
	Marks []Mark
}

// Mark is where an event lies in the log and when it was recorded.
type Mark struct {
	Pos eventstore.Position
	At  time.Time
}

// Found is where the index places a cut in a stream.
type Found struct {
	// Block is the last stored block whose last event the cut includes,
	// with the state in force after it; HasBlock false when there is none.
	Block    Block
	HasBlock bool
	// Past is how many events after Block (after the stream's start
	// without one) the cut includes, counted in the next block's marks:
	// -1 when the index does not know (that block is not stored, or was
	// stored without marks).
	Past int
}

// Blocks is the index's storage.
type Blocks interface {
	// Last finds the cut in each of streams. Streams the index knows
	// nothing of are absent from the map.
	Last(ctx context.Context, streams []string, cut Cut) (map[string]Found, error)
	// Save stores blocks; a block already stored is kept as it is. A
	// block's State may be nil when it equals the block before's.
	Save(ctx context.Context, blocks []Block) error
	// Drop forgets every block of a stream.
	Drop(ctx context.Context, stream string) error
}

// Rooms are the look-ups of the read model that tell where in the log to
// look: they locate, the log answers.
type Rooms interface {
	// PastRooms lists every room the user has ever been a member of.
	PastRooms(ctx context.Context, user int64) ([]int64, error)
	// MessageRoom returns the room of a message; ok false when no message
	// has that id.
	MessageRoom(ctx context.Context, id int64) (room int64, ok bool, err error)
}

// Config is what a Reader reads with.
type Config struct {
	// Log is the event log, read through the shredding decorator.
	Log      eventstore.Store
	Registry *domain.Registry
	Blocks   Blocks
	Rooms    Rooms
	Logger   *slog.Logger
}

// Reader answers questions about the past.
type Reader struct {
	cfg Config
}

// New returns a Reader.
func New(cfg Config) *Reader {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Reader{cfg: cfg}
}

// eventTime is when an event was recorded as the API shows it: its
// metadata's time (the one every read model shows), else the log's.
func eventTime(e eventstore.RecordedEvent) time.Time {
	var md domain.Metadata
	if len(e.Metadata) > 0 {
		md, _ = domain.ParseMetadata(e.Metadata) // undecodable metadata: the log's time
	}
	if md.Time.IsZero() {
		md.Time = e.Created
	}
	return md.Time.UTC().Truncate(time.Microsecond)
}
