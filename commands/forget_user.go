package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

// KeyShredder deletes the key that seals a user's personal data in the log
// (package shred), for ever; forgetting again is no error.
type KeyShredder interface {
	Forget(ctx context.Context, user int64) error
}

// ErrUserNotFound is a user id that no user has.
var ErrUserNotFound = domain.Errorf(domain.KindNotFound, "User not found")

// forgetNamespace derives the id of a user's domain.UserForgotten: a
// retried forget appends nothing new.
var forgetNamespace = uuid.MustParse("6f2c1d1e-58a4-4c55-9d0b-5a0f5f2b7c11")

// ForgetUser forgets a user: it deletes their key through keys, then appends
// domain.UserForgotten to their stream. The key goes first, so that the
// event in the log always means the data is unreadable; a forget that dies
// in between is completed by running it again (it is idempotent, and the
// event's id is derived from the user). A user forgotten already answers
// with the position of their first UserForgotten. An id of no user is
// ErrUserNotFound.
func (s *Service) ForgetUser(ctx context.Context, a Actor, user int64, keys KeyShredder) (_ Written, err error) {
	defer s.observe("forget_user", s.now(), &err)
	stream := domain.UserStream(user)
	for attempt := 0; ; attempt++ {
		evs, err := s.store.ReadStream(ctx, stream, eventstore.Forwards, 0, 1000)
		if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && (len(evs) == 0 || evs[0].Type != domain.TypeUserRegistered)) {
			return Written{}, ErrUserNotFound
		}
		if err != nil {
			return Written{}, fmt.Errorf("forget user %d: %w", user, err)
		}
		if err := keys.Forget(ctx, user); err != nil {
			return Written{}, fmt.Errorf("forget user %d: %w", user, err)
		}
		for _, e := range evs {
			if e.Type == domain.TypeUserForgotten {
				return Written{Position: e.Position, At: e.Created}, nil
			}
		}
		data, at, err := s.encode(a, []uuid.UUID{uuid.NewSHA1(forgetNamespace, []byte(strconv.FormatInt(user, 10)))},
			domain.UserForgotten{UserID: user})
		if err != nil {
			return Written{}, err
		}
		res, err := s.store.Append(ctx, stream, eventstore.Exact(evs[len(evs)-1].Revision), data...)
		if conflict(err) && attempt < s.retries {
			continue // the stream moved (a long one, or a concurrent forget): read it again
		}
		if err != nil {
			return Written{}, fmt.Errorf("forget user %d: append: %w", user, err)
		}
		return Written{Position: res.Position, At: at}, nil
	}
}

// DropCachedState drops every aggregate state this process caches: a
// forgotten user's personal data may be in it (a room's name), and the
// next load reads it through the shredder again. Forgetting is rare; the
// cost is one reload per active room.
func (s *Service) DropCachedState() { s.convs.clear() }

func (c *stateCache[S]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.items)
}
