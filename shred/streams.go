package shred

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/evchat/evchat/eventstore"
)

// Username reservation streams are named by the name they reserve
// (domain.UsernameStream: username-<name>), so the log's stream names
// would name every user, forgotten or not, and no key can be deleted to
// hide a stream name. With Options.StreamKey the shredder stores them as
// uname-<HMAC-SHA256(key, name), 128 bits, hex> instead: the callers keep
// asking for username-<name>, and the name is not in the log.
//
// A reservation stream written before (legacy, named in the clear) keeps
// its name: appends and reads go to it when it exists, and a "no stream"
// append to a name it holds fails as before. That check is race-free
// because a legacy stream can no longer be created: every new reservation
// goes to the hashed name. (During a rolling upgrade, processes of the
// old version still create legacy streams: upgrade them all at once.)
const (
	legacyUsernamePrefix = "username-"
	hashedUsernamePrefix = "uname-"
)

// hashedStream returns the stored name of a username stream, and false
// for any other stream (or when streams are not hashed).
func (s *Store) hashedStream(stream string) (string, bool) {
	name, ok := strings.CutPrefix(stream, legacyUsernamePrefix)
	if !ok || len(s.opts.StreamKey) == 0 {
		return stream, false
	}
	mac := hmac.New(sha256.New, s.opts.StreamKey)
	mac.Write([]byte(name))
	return hashedUsernamePrefix + hex.EncodeToString(mac.Sum(nil)[:16]), true
}

// appendStream returns the stream an append to stream goes to: a legacy
// username stream when it exists, else its hashed name. A "no stream"
// append to a name a legacy stream holds is refused here.
func (s *Store) appendStream(ctx context.Context, stream string, expected eventstore.ExpectedRevision) (string, error) {
	hashed, ok := s.hashedStream(stream)
	if !ok {
		return stream, nil
	}
	last, err := s.inner.ReadStream(ctx, stream, eventstore.Backwards, eventstore.End, 1)
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && len(last) == 0):
		return hashed, nil
	case err != nil:
		return "", err
	case expected.IsNoStream():
		return "", &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: int64(last[0].Revision)}
	}
	return stream, nil
}

// readStream reads a username stream under its hashed name, or its legacy
// one when the hashed one does not exist.
func (s *Store) readStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	hashed, ok := s.hashedStream(stream)
	if !ok {
		return s.inner.ReadStream(ctx, stream, dir, from, count)
	}
	evs, err := s.inner.ReadStream(ctx, hashed, dir, from, count)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return s.inner.ReadStream(ctx, stream, dir, from, count)
	}
	return evs, err
}
