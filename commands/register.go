package commands

import (
	"context"
	"errors"
	"fmt"

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
	reservation, _, err := s.encode(a, nil, domain.UsernameReserved{Username: lower, UserID: id})
	if err != nil {
		return Registered{}, err
	}
	_, err = s.store.Append(ctx, domain.UsernameStream(lower), eventstore.NoStream(), reservation...)
	var wev *eventstore.WrongExpectedVersionError
	if errors.As(err, &wev) {
		return Registered{}, domain.ErrUsernameTaken
	}
	if err != nil {
		return Registered{}, fmt.Errorf("register: reserve username: %w", err)
	}
	user, at, err := s.encode(a, nil, domain.Register(id, cmd.Username, hash)...)
	if err != nil {
		return Registered{}, err
	}
	res, err := s.store.Append(ctx, domain.UserStream(id), eventstore.NoStream(), user...)
	if err != nil {
		// The name stays reserved for a user that was never created; an
		// operator can see it with `chatctl audit stream username-<name>`.
		return Registered{}, fmt.Errorf("register: append user: %w", err)
	}
	return Registered{Written: Written{Position: res.Position, At: at}, UserID: id, Username: cmd.Username}, nil
}
