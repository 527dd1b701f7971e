// Package commands holds the write side: one file per use case. Each loads
// the aggregate, lets the domain decide, and appends the new events with the
// expected revision; a conflict is retried a bounded number of times.
package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// EventStore is what the commands need of the event store.
type EventStore interface {
	Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error)
	ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error)
}

// IDKind names an id sequence.
type IDKind string

const (
	UserIDs         IDKind = "users"
	ConversationIDs IDKind = "conversations"
	MembershipIDs   IDKind = "memberships"
	MessageIDs      IDKind = "messages"
)

// IDs hands out the API's integer ids.
type IDs interface {
	Next(ctx context.Context, kind IDKind) (int64, error)
	NextN(ctx context.Context, kind IDKind, n int) ([]int64, error)
}

// ProjectedLookups are the questions the commands ask of projected data.
// The answers come from the read model and lag the log: a user registered a
// moment ago may not be found yet, nor a message just sent. The rules that
// must be exact are decided on the log itself (a username is unique by its
// reservation stream, membership is checked on the conversation's stream).
type ProjectedLookups interface {
	// MissingUsers returns the ids among ids that belong to no user.
	MissingUsers(ctx context.Context, ids []int64) ([]int64, error)
	// UsernameTaken reports whether a user has a name of the key
	// (domain.NormalizeUsername).
	UsernameTaken(ctx context.Context, lower string) (bool, error)
	// ReceiptTargets returns, of ids, those that are messages of the
	// conversation, and those of them the reader received and has not read.
	ReceiptTargets(ctx context.Context, conversation, reader int64, ids []int64) (inRoom, unread []int64, err error)
}

// SendKeys remembers the message each idempotency key made. A key is
// claimed before its message is appended and completed after, so a request
// that finds a claim without a message knows to look for it in the log. A
// claim has an owner: the request that may append under it and release it.
type SendKeys interface {
	// Claim records the key for a send into conversation, held by owner,
	// unless the key is recorded already: then it returns the record and
	// false.
	Claim(ctx context.Context, user int64, key string, conversation int64, owner uuid.UUID) (KeyedSend, bool, error)
	// TakeOver passes a claim without a message from owner from to owner
	// to, and reports whether it did (the claim was still from's).
	TakeOver(ctx context.Context, user int64, key string, from, to uuid.UUID) (bool, error)
	// Complete records the message the key made.
	Complete(ctx context.Context, user int64, key string, s KeyedSend) error
	// Release forgets owner's claim if it made no message, so that the key
	// can be used again (the send was refused).
	Release(ctx context.Context, user int64, key string, owner uuid.UUID) error
}

// KeyedSend is what an idempotency key made. MessageID is 0 while the key
// is only claimed; Owner is then the claim's owner.
type KeyedSend struct {
	ConversationID int64
	MessageID      int64
	Position       eventstore.Position
	Owner          uuid.UUID
}

// Actor is who asks for a command, for the events' metadata.
type Actor struct {
	UserID    int64
	RequestID string
}

// Written tells where a command's last event landed, so a caller can wait
// for the read model to show it.
type Written struct {
	Position eventstore.Position
	// At is the time recorded in the events' metadata.
	At time.Time
}

// Config wires a Service.
type Config struct {
	Store    EventStore
	IDs      IDs
	Lookups  ProjectedLookups
	SendKeys SendKeys
	// Credentials stores password hashes (required by Register).
	Credentials Credentials
	Registry    *domain.Registry
	Limits      domain.Limits
	Logger      *slog.Logger
	Now         func() time.Time
	// CacheSize bounds the aggregate-state cache (streams). Default
	// DefaultCacheSize.
	CacheSize int
	// MaxRetries bounds conflict retries. Default 8.
	MaxRetries int
	// Snapshots, when set, stores conversation snapshots every
	// SnapshotEvery events (default 1,000).
	Snapshots     Snapshots
	SnapshotEvery int
	// Projected and IDsAfter, when set, hold every id (users,
	// conversations, memberships, messages) until the read model has
	// projected the log through IDsAfter, the log's head when the process
	// started: until then the id sequences may be behind the log (see
	// gatedIDs). A command that needs an id meanwhile waits at most IDsWait
	// (default 2 s), then fails with domain.ErrUnavailable.
	Projected Projected
	IDsAfter  eventstore.Position
	IDsWait   time.Duration
	// InviteTTL is how long an invite to an invite-only group admits
	// (default 7 days).
	InviteTTL time.Duration
	// Messages answers what the read model holds of a message, for the
	// rules of editing, deleting and reacting (message_life.go).
	Messages ProjectedMessages
	// Observe, when set, is told each command's name, its error (nil when
	// it succeeded) and how long it took (metrics). It must not block.
	Observe func(command string, err error, dur time.Duration)
}

// Service runs the commands. It is safe for concurrent use.
type Service struct {
	store    EventStore
	ids      IDs
	lookups  ProjectedLookups
	keys     SendKeys
	creds    Credentials
	registry *domain.Registry
	limits   domain.Limits
	log      *slog.Logger
	now      func() time.Time
	retries  int
	convs    *stateCache[*convState]
	locks    *streamLocks
	// sendQueues combines concurrent sends into one room (send_combined.go).
	sendQueues *sendQueues
	// messageIDs hands out message ids from blocks (message_ids.go).
	messageIDs *idBlocks
	keyLocks   *streamLocks // per user and idempotency key
	// snaps and snapshotEvery: see snapshots.go.
	snaps         Snapshots
	snapshotEvery int64
	inviteTTL     time.Duration
	observer      func(command string, err error, dur time.Duration)
	messages      ProjectedMessages
}

// DefaultCacheSize is how many streams' state a Service keeps cached
// unless Config.CacheSize says otherwise.
const DefaultCacheSize = 10_000

// New returns a Service.
func New(c Config) *Service {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheSize <= 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = 8
	}
	if c.SnapshotEvery <= 0 {
		c.SnapshotEvery = 1000
	}
	if c.Limits == (domain.Limits{}) {
		c.Limits = domain.DefaultLimits()
	}
	if c.InviteTTL <= 0 {
		c.InviteTTL = 7 * 24 * time.Hour
	}
	if c.IDsWait <= 0 {
		c.IDsWait = 2 * time.Second
	}
	if c.Projected != nil && !c.IDsAfter.IsZero() {
		c.IDs = &gatedIDs{IDs: c.IDs, after: c.IDsAfter, projected: c.Projected, wait: c.IDsWait, log: c.Logger}
	}
	return &Service{
		store: c.Store, ids: c.IDs, lookups: c.Lookups, keys: c.SendKeys, creds: c.Credentials, registry: c.Registry,
		limits: c.Limits, log: c.Logger, now: c.Now, retries: c.MaxRetries,
		convs: newStateCache[*convState](c.CacheSize), locks: newStreamLocks(), sendQueues: newSendQueues(),
		messageIDs: &idBlocks{ids: c.IDs, kind: MessageIDs}, keyLocks: newStreamLocks(),
		snaps: c.Snapshots, snapshotEvery: int64(c.SnapshotEvery), inviteTTL: c.InviteTTL, observer: c.Observe,
		messages: c.Messages,
	}
}

// Registry returns the event registry the service encodes with.
func (s *Service) Registry() *domain.Registry { return s.registry }

// Limits returns the limits the service enforces.
func (s *Service) Limits() domain.Limits { return s.limits }

// ErrConflict is returned when a command still conflicts after its retries.
var ErrConflict = domain.Errorf(domain.KindConflict, "The conversation is busy; try again.")

// encode turns domain events into event data with metadata.
func (s *Service) encode(a Actor, ids []uuid.UUID, events ...domain.Event) ([]eventstore.EventData, time.Time, error) {
	at := s.now().UTC().Truncate(time.Microsecond)
	out := make([]eventstore.EventData, len(events))
	for i, e := range events {
		typ, data, err := s.registry.Encode(e)
		if err != nil {
			return nil, at, err
		}
		md, err := json.Marshal(domain.Metadata{
			ActorID: a.UserID, RequestID: a.RequestID, CorrelationID: a.RequestID,
			Time: at, Version: s.registry.Version(typ),
		})
		if err != nil {
			return nil, at, err
		}
		id := uuid.New()
		if i < len(ids) {
			id = ids[i]
		}
		out[i] = eventstore.EventData{ID: id, Type: typ, Data: data, Metadata: md}
	}
	return out, at, nil
}

// expectedAfter is the expected revision of an append after revision rev
// (-1 when the stream has no events).
func expectedAfter(rev int64) eventstore.ExpectedRevision {
	if rev < 0 {
		return eventstore.NoStream()
	}
	return eventstore.Exact(uint64(rev))
}

// loadConversation returns the conversation's state and revision (-1 when it
// does not exist), reading only the events after the cached revision.
func (s *Service) loadConversation(ctx context.Context, id int64) (*convState, int64, error) {
	return s.loadConversationAt(ctx, id, false)
}

// loadConversationAt is loadConversation; with optimistic set, a cached
// state is used as it is, without reading the stream's tail: the caller
// appends at the exact cached revision, so a change it missed (made by
// another process) shows up as a conflict, and the retry loads afresh.
func (s *Service) loadConversationAt(ctx context.Context, id int64, optimistic bool) (*convState, int64, error) {
	stream := domain.ConversationStream(id)
	state, rev, ok := s.convs.get(stream)
	if ok && optimistic {
		return state.clone(), rev, nil
	}
	// verify is the id of the event at rev when rev comes from a snapshot:
	// the read starts at that event to check that the snapshot belongs to
	// this stream's history.
	var verify uuid.UUID
	switch {
	case ok:
		state = state.clone()
	default:
		state, rev = newConvState(&domain.Conversation{}), -1
		if snapState, snap, found := s.snapshotFrom(ctx, stream); found {
			state, rev, verify = newConvState(snapState), snap.Revision, snap.EventID
		}
	}
	const chunk = 1000
	read := 0
	var lastID uuid.UUID
	for {
		from := rev + 1
		if verify != uuid.Nil {
			from = rev
		}
		events, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, uint64(from), chunk)
		full := len(events) == chunk
		if verify != uuid.Nil {
			if err == nil && len(events) > 0 && int64(events[0].Revision) == rev && events[0].ID == verify {
				state.floor = events[0].Position
				events, verify = events[1:], uuid.Nil
			} else if err == nil || errors.Is(err, eventstore.ErrStreamNotFound) {
				s.log.Warn("snapshot: not of this stream's history; reading the whole stream", "stream", stream, "revision", rev)
				state, rev, verify = newConvState(&domain.Conversation{}), -1, uuid.Nil
				continue
			}
		}
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return state, -1, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("load %s: %w", stream, err)
		}
		var lastMessage *eventstore.RecordedEvent
		for i, re := range events {
			// Of the messages only the last one matters (its id: ids rise in
			// log order): skip decoding the others.
			if re.Type == domain.TypeMessageSent {
				lastMessage = &events[i]
			} else {
				ev, err := s.decode(re)
				if err != nil {
					return nil, 0, fmt.Errorf("load %s: %w", stream, err)
				}
				state.apply(ev, re.Position)
			}
			rev, lastID = int64(re.Revision), re.ID
		}
		if lastMessage != nil {
			ev, err := s.decode(*lastMessage)
			if err != nil {
				return nil, 0, fmt.Errorf("load %s: %w", stream, err)
			}
			state.apply(ev, lastMessage.Position)
		}
		read += len(events)
		if !full {
			break
		}
	}
	s.convs.put(stream, state.clone(), rev)
	if read >= int(s.snapshotEvery) {
		s.saveSnapshot(ctx, stream, state.conv, rev, lastID)
	}
	return state, rev, nil
}

// keyedEvent is the event of a send with an idempotency key: its id, and
// the revision through which the stream is known not to hold it (-1: none).
type keyedEvent struct {
	id      uuid.UUID
	through int64
}

// appendedThrough looks for the event in the stream after k.through, up to
// revision upTo at least (math.MaxInt64: to the end), and moves k.through to
// what it read.
func (k *keyedEvent) appendedThrough(ctx context.Context, s *Service, stream string, upTo int64) (Written, bool, error) {
	for upTo > k.through {
		events, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, uint64(k.through+1), 1000)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return Written{}, false, nil
		}
		if err != nil {
			return Written{}, false, fmt.Errorf("read %s: %w", stream, err)
		}
		for _, re := range events {
			if re.ID == k.id {
				return Written{Position: re.Position, At: re.Created}, true, nil
			}
			k.through = int64(re.Revision)
		}
		if len(events) < 1000 {
			break
		}
	}
	return Written{}, false, nil
}

func (s *Service) decode(re eventstore.RecordedEvent) (domain.Event, error) {
	var md domain.Metadata
	if len(re.Metadata) > 0 {
		if err := json.Unmarshal(re.Metadata, &md); err != nil {
			return nil, fmt.Errorf("event %s metadata: %w", re.ID, err)
		}
	}
	return s.registry.Decode(re.Type, md.Version, re.Data)
}

// backOff waits a little, at random, before retrying after a conflict, so
// that processes writing one stream stop colliding: up to 1 ms after the
// first conflict, doubling each time.
func backOff(ctx context.Context, attempt int) {
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// conflict reports whether err is an optimistic-concurrency conflict.
func conflict(err error) bool {
	var wev *eventstore.WrongExpectedVersionError
	return errors.As(err, &wev)
}

// updateConversation runs decide under the stream's in-process lock, then
// appends its events at the loaded revision, retrying on conflicts with other
// processes. decide returns the events (none: nothing to do) and may set a
// result through its closure. key, for a send with an idempotency key,
// gives its event id and how far the stream is known not to hold it. The
// state returned is the one decide saw, with the new events applied.
func (s *Service) updateConversation(ctx context.Context, a Actor, id int64, key *keyedEvent,
	decide func(c *domain.Conversation) ([]domain.Event, error),
) (Written, *convState, error) {
	stream := domain.ConversationStream(id)
	unlock := s.locks.lock(stream)
	defer unlock()
	var eventIDs []uuid.UUID
	if key != nil {
		eventIDs = []uuid.UUID{key.id}
	}
	for attempt := 0; ; attempt++ {
		c, rev, err := s.loadConversationAt(ctx, id, attempt == 0)
		if err != nil {
			return Written{}, nil, err
		}
		if key != nil {
			// The stream is at rev: the event must not be in it yet (a
			// concurrent request with the key appended it), and past rev
			// the expected revision keeps it out.
			if w, found, err := key.appendedThrough(ctx, s, stream, rev); err != nil || found {
				return w, nil, err
			}
		}
		events, err := decide(c.conv)
		if err != nil || len(events) == 0 {
			if attempt == 0 && rev >= 0 {
				// Decided on cached state and nothing will be appended, so
				// no revision check would catch a stale cache: decide
				// again on the stream as it is.
				if _, frev, ferr := s.loadConversation(ctx, id); ferr == nil && frev != rev {
					continue
				}
			}
			return Written{}, c, err
		}
		data, at, err := s.encode(a, eventIDs, events...)
		if err != nil {
			return Written{}, nil, err
		}
		res, err := s.store.Append(ctx, stream, expectedAfter(rev), data...)
		if conflict(err) && key != nil {
			// The stream moved: perhaps by this very event.
			if w, found, err := key.appendedThrough(ctx, s, stream, math.MaxInt64); err != nil || found {
				return w, nil, err
			}
		}
		if conflict(err) && attempt < s.retries {
			s.convs.drop(stream)
			backOff(ctx, attempt)
			continue
		}
		if conflict(err) {
			return Written{}, nil, ErrConflict
		}
		if err != nil {
			return Written{}, nil, fmt.Errorf("append to %s: %w", stream, err)
		}
		for _, e := range events {
			c.apply(e, res.Position)
		}
		s.appended(ctx, stream, c.clone(), rev, len(data), int64(res.Revision), data[len(data)-1].ID)
		return Written{Position: res.Position, At: at}, c, nil
	}
}
