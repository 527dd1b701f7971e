package commands

import (
	"context"
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

// Credentials keeps password hashes out of the event log (an immutable log
// could never erase them), keyed by user id.
type Credentials interface {
	// Set stores the hash of a user's password; setting it again replaces it.
	Set(ctx context.Context, user int64, hash string) error
	// Delete forgets a user's password hash; deleting none is no error.
	Delete(ctx context.Context, user int64) error
}

// Registered is the new user.
type Registered struct {
	Written
	UserID   int64
	Username string
}

// errNoCredentials is a Service wired without Config.Credentials.
var errNoCredentials = errors.New("register: no credential store configured")

// ErrRegistrationAbandoned is returned by a registration whose username
// reservation was taken over before its user was created: it stalled
// between its two appends for longer than reclaimAfter.
var ErrRegistrationAbandoned = domain.Errorf(domain.KindConflict, "The registration took too long and was abandoned; try again.")

// Register creates a user. The username is claimed by appending to its
// reservation stream with "no stream" expected: the event store, not the read
// model, makes usernames unique. A taken name is a field error; a
// registration whose reservation was reclaimed meanwhile is
// ErrRegistrationAbandoned.
//
// The password hash never enters the log: it is stored through Credentials
// under the user id once the username is reserved, and then the user is
// appended, recording only that a password was set. Login needs both (the
// projected user and the credential), so a registration that dies between
// the two leaves a credential of an id that no user will ever have (the
// reservation's reclaim closes that user stream) and nothing that can log
// in; one that fails to store the credential appends no user, and its name
// is reclaimed like that of any registration that died after reserving it.
func (s *Service) Register(ctx context.Context, a Actor, cmd Register, h PasswordHasher) (_ Registered, err error) {
	defer s.observe("register", s.now(), &err)
	// The name is registered and shown in its NFKC form, and unique in its
	// case-folded key (see domain.NormalizeUsername).
	cmd.Username = domain.CleanUsername(cmd.Username)
	if err := domain.ValidateCredentials(cmd.Username, cmd.Password); err != nil {
		return Registered{}, err
	}
	lower := domain.NormalizeUsername(cmd.Username)
	// Fast path: a known duplicate costs no id and no hashing.
	if taken, err := s.lookups.UsernameTaken(ctx, lower); err != nil {
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
	reservation, _, err := s.encode(a, nil, domain.UsernameReserved{Username: lower, UserID: id})
	if err != nil {
		return Registered{}, err
	}
	stream := domain.UsernameStream(lower)
	_, err = s.store.Append(ctx, stream, eventstore.NoStream(), reservation...)
	if conflict(err) {
		err = s.reclaimUsername(ctx, a, stream, reservation)
	} else if err != nil {
		err = fmt.Errorf("register: reserve username: %w", err)
	}
	if err != nil {
		return Registered{}, err
	}
	if s.creds == nil {
		return Registered{}, errNoCredentials
	}
	if err := s.creds.Set(ctx, id, hash); err != nil {
		return Registered{}, fmt.Errorf("register: %w", err)
	}
	user, at, err := s.encode(a, nil, domain.Register(id, cmd.Username)...)
	if err != nil {
		return Registered{}, err
	}
	res, err := s.store.Append(ctx, domain.UserStream(id), eventstore.NoStream(), user...)
	if conflict(err) {
		// A registration reclaiming the name closed this user's stream
		// first (domain.RegistrationAbandoned): the name is no longer ours.
		abandoned, rerr := s.registrationAbandoned(ctx, domain.UserStream(id))
		if rerr != nil {
			return Registered{}, rerr
		}
		if !abandoned {
			return Registered{}, fmt.Errorf("register: user %d exists already: %w", id, err)
		}
		// No user will ever have this id: its credential is dead weight.
		if derr := s.creds.Delete(ctx, id); derr != nil {
			s.log.Warn("register: could not delete the credential of an abandoned registration", "user_id", id, "err", derr)
		}
		return Registered{}, ErrRegistrationAbandoned
	}
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
// already, if its last reservation is an orphan: older than reclaimAfter by
// the store's clock, and its registration abandoned (see
// abandonRegistration). Otherwise the name is taken.
func (s *Service) reclaimUsername(ctx context.Context, a Actor, stream string, reservation []eventstore.EventData) error {
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
	// The time the store recorded, not the clock of the process that
	// wrote the reservation.
	if !ok || s.now().Sub(last[0].Created) < reclaimAfter {
		return domain.ErrUsernameTaken
	}
	if err := s.abandonRegistration(ctx, a, held); err != nil {
		return err
	}
	s.log.Info("register: reclaiming a username whose registration never completed",
		"stream", stream, "orphan_user_id", held.UserID, "reserved_at", last[0].Created)
	_, err = s.store.Append(ctx, stream, eventstore.Exact(last[0].Revision), reservation...)
	if conflict(err) {
		return domain.ErrUsernameTaken // another registration reclaimed it first
	}
	if err != nil {
		return fmt.Errorf("register: reserve username: %w", err)
	}
	return nil
}

// abandonRegistration closes the user stream of the registration that made
// reservation held, unless that registration created its user: it appends
// domain.RegistrationAbandoned with "no stream" expected, as the
// registration appends its user, so that exactly one of the two lands. It
// returns nil when the stream is closed (by this call, or by an earlier
// reclaim that did not get to take the name), and domain.ErrUsernameTaken
// when the user exists.
func (s *Service) abandonRegistration(ctx context.Context, a Actor, held domain.UsernameReserved) error {
	stream := domain.UserStream(held.UserID)
	data, _, err := s.encode(a, nil, domain.RegistrationAbandoned{UserID: held.UserID, Username: held.Username})
	if err != nil {
		return err
	}
	_, err = s.store.Append(ctx, stream, eventstore.NoStream(), data...)
	if err == nil {
		return nil
	}
	if !conflict(err) {
		return fmt.Errorf("register: close %s: %w", stream, err)
	}
	abandoned, err := s.registrationAbandoned(ctx, stream)
	if err != nil {
		return err
	}
	if !abandoned {
		return domain.ErrUsernameTaken // the user exists
	}
	return nil
}

// registrationAbandoned reports whether a user stream that exists was
// closed by domain.RegistrationAbandoned rather than made by its user.
func (s *Service) registrationAbandoned(ctx context.Context, stream string) (bool, error) {
	first, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, 0, 1)
	if err != nil {
		return false, fmt.Errorf("register: read %s: %w", stream, err)
	}
	return len(first) == 1 && first[0].Type == domain.TypeRegistrationAbandoned, nil
}
