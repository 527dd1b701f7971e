package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// Register is a request to create a user.
type Register struct {
	Username string
	Password string
}

// PasswordHasher makes the slow salted hash stored for a password.
type PasswordHasher interface {
	Hash(password string) (string, error)
}

// Registered is the new user.
type Registered struct {
	Written
	UserID   int64
	Username string
}

// Register creates a user. The username is claimed by appending to its
// reservation stream with "no stream" expected: the event store, not the read
// model, makes usernames unique. A taken name is a field error.
func (s *Service) Register(ctx context.Context, a Actor, cmd Register, h PasswordHasher) (Registered, error) {
	if err := domain.ValidateCredentials(cmd.Username, cmd.Password); err != nil {
		return Registered{}, err
	}
	lower := domain.NormalizeUsername(cmd.Username)
	// Fast path: a known duplicate costs no id and no hashing.
	if taken, err := s.rm.UsernameTaken(ctx, lower); err != nil {
		return Registered{}, fmt.Errorf("register: %w", err)
	} else if taken {
		return Registered{}, domain.ErrUsernameTaken
	}
	hash, err := h.Hash(cmd.Password)
	if err != nil {
		return Registered{}, fmt.Errorf("register: hash password: %w", err)
	}
	id, err := s.ids.Next(ctx, UserIDs)
	if err != nil {
		return Registered{}, fmt.Errorf("register: %w", err)
	}
	a.UserID = id
	reservation, reservedAt, err := s.encode(a, nil, domain.UsernameReserved{Username: lower, UserID: id})
	if err != nil {
		return Registered{}, err
	}
	stream := domain.UsernameStream(lower)
	_, err = s.store.Append(ctx, stream, eventstore.NoStream(), reservation...)
	var wev *eventstore.WrongExpectedVersionError
	if errors.As(err, &wev) {
		err = s.reclaimUsername(ctx, stream, reservation)
	}
	if err != nil {
		return Registered{}, err
	}
	// A reservation older than reclaimAfter may be taken over: never create
	// the user of one that old.
	if s.now().Sub(reservedAt) > reclaimAfter/2 {
		return Registered{}, fmt.Errorf("register: the username reservation took too long; try again")
	}
	user, at, err := s.encode(a, nil, domain.Register(id, cmd.Username, hash)...)
	if err != nil {
		return Registered{}, err
	}
	res, err := s.store.Append(ctx, domain.UserStream(id), eventstore.NoStream(), user...)
	if err != nil {
		// The name stays reserved for a user that was never created until a
		// registration reclaims it (after reclaimAfter).
		return Registered{}, fmt.Errorf("register: append user: %w", err)
	}
	return Registered{Written: Written{Position: res.Position, At: at}, UserID: id, Username: cmd.Username}, nil
}

// reclaimAfter is the age past which a username reservation whose user was
// never created may be taken over by a new registration.
const reclaimAfter = 5 * time.Minute

// reclaimUsername appends reservation to a reservation stream that exists
// already, if its last reservation is an orphan: its user was never created
// and it is older than reclaimAfter. Otherwise the name is taken.
func (s *Service) reclaimUsername(ctx context.Context, stream string, reservation []eventstore.EventData) error {
	last, err := s.store.ReadStream(ctx, stream, eventstore.Backwards, eventstore.End, 1)
	if err != nil || len(last) == 0 {
		if err == nil || errors.Is(err, eventstore.ErrStreamNotFound) {
			return domain.ErrUsernameTaken // it was there a moment ago: keep it simple
		}
		return fmt.Errorf("register: read %s: %w", stream, err)
	}
	ev, err := s.decode(last[0])
	if err != nil {
		return fmt.Errorf("register: read %s: %w", stream, err)
	}
	held, ok := ev.(domain.UsernameReserved)
	if !ok {
		return domain.ErrUsernameTaken
	}
	var md domain.Metadata
	if err := json.Unmarshal(last[0].Metadata, &md); err != nil || s.now().Sub(md.Time) < reclaimAfter {
		return domain.ErrUsernameTaken
	}
	_, err = s.store.ReadStream(ctx, domain.UserStream(held.UserID), eventstore.Forwards, 0, 1)
	if !errors.Is(err, eventstore.ErrStreamNotFound) {
		if err != nil {
			return fmt.Errorf("register: read the reserving user: %w", err)
		}
		return domain.ErrUsernameTaken // the user exists
	}
	s.log.Info("register: reclaiming a username whose registration never completed",
		"stream", stream, "orphan_user_id", held.UserID, "reserved_at", md.Time)
	_, err = s.store.Append(ctx, stream, eventstore.Exact(last[0].Revision), reservation...)
	if conflict(err) {
		return domain.ErrUsernameTaken // another registration reclaimed it first
	}
	if err != nil {
		return fmt.Errorf("register: reserve username: %w", err)
	}
	return nil
}
