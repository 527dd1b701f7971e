package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evchat/evchat/eventstore"
)

// conn is one generation of the library client.
//
// The library gives up after a failed node discovery: its connection
// goroutine exits and the client answers every later call with
// ErrorCodeConnectionClosed. The store then builds a new client. A client
// replaced that way is never closed: closing it would close a channel that
// a concurrent caller may still be blocked sending on, which panics.
//
// While a generation is not known to be healthy (new, or after an
// unavailable error, which starts a rediscovery in the library), calls go
// through it one at a time. This keeps concurrent callers from queueing on
// the library's connection goroutine during a discovery that may end with
// that goroutine gone, which would leave them blocked for good.
type conn struct {
	client  *kurrent.Client
	healthy atomic.Bool
	gate    chan struct{}
}

func newConn(cfg *kurrent.Configuration) (*conn, error) {
	c := *cfg // the library keeps a pointer; give each generation its own copy
	client, err := kurrent.NewClient(&c)
	if err != nil {
		return nil, err
	}
	return &conn{client: client, gate: make(chan struct{}, 1)}, nil
}

// enter waits for the right to call the library, when the generation needs
// it, and returns the function that gives it back.
func (c *conn) enter(ctx context.Context) (release func(), err error) {
	if c.healthy.Load() {
		return func() {}, nil
	}
	select {
	case c.gate <- struct{}{}:
		return func() { <-c.gate }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// current returns the client generation in use.
func (s *Store) current() *conn {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.conn
}

// observe updates what is known of generation c after a call that returned
// err. It reports whether the call may be retried at once on a new
// generation (the library refused it without sending anything).
func (s *Store) observe(c *conn, err error) (retry bool) {
	code, ok := errorCode(err)
	switch {
	case err == nil:
		c.healthy.Store(true)
	case !ok:
		if isUnavailable(err) {
			c.healthy.Store(false)
		}
	case code == kurrent.ErrorCodeConnectionClosed:
		s.replace(c)
		return true
	case code == kurrent.ErrorUnavailable || code == kurrent.ErrorCodeNotLeader:
		c.healthy.Store(false)
	case answered(code):
		c.healthy.Store(true)
	}
	return false
}

// replace swaps generation c for a new client, unless it was swapped already.
func (s *Store) replace(c *conn) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != c || s.ctx.Err() != nil { // swapped already, or closing
		return
	}
	next, err := newConn(s.cfg)
	if err != nil { // the configuration was valid before; keep the old one
		s.log.Error("event store: cannot rebuild the EventStoreDB client", "err", err)
		return
	}
	s.log.Warn("event store: EventStoreDB client gave up after failed discovery; rebuilt it")
	s.conn = next
}

// do runs fn with the current client on behalf of a caller, retrying once
// on a new client when the library had closed itself. The returned error is
// fn's, unclassified.
func (s *Store) do(ctx context.Context, fn func(context.Context, *kurrent.Client) error) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c := s.current()
		release, err := c.enter(ctx)
		if err != nil {
			return err
		}
		err = s.call(ctx, c, release, fn)
		if s.observe(c, err) && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// call runs fn on generation c and returns its error, or the error of ctx
// when ctx ends first. The library's search for a server after a failure
// does not watch a call's context (by default it takes up to 10 attempts
// of up to 5 s each), so a caller that stopped waiting is let go, and the
// abandoned call finishes in the background: its result still tells what
// is known of the generation, and it gives the generation's gate back
// (release) only when the library is done with it. An abandoned fn may
// still write what it captured: callers read fn's results only when call
// returns nil.
//
// The call counts as a running operation until fn has returned, abandoned
// or not, so Close does not close the client under it. call runs inside an
// operation begun with begin, so the count is above zero when it is raised.
func (s *Store) call(ctx context.Context, c *conn, release func(), fn func(context.Context, *kurrent.Client) error) error {
	res := make(chan error)
	abandoned := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := fn(ctx, c.client)
		release()
		select {
		case res <- err:
		case <-abandoned:
			s.observe(c, err)
		}
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		close(abandoned)
		return ctx.Err()
	}
}

// begin registers an operation, so Close can wait for it, and returns its
// context, which Close also cancels.
func (s *Store) begin(parent context.Context) (context.Context, func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, ErrClosed
	}
	s.wg.Add(1)
	s.mu.RUnlock()
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		s.wg.Done()
	}, nil
}

// classify turns a failure of an operation started with parent into the
// port's terms: the caller's own context error as is, ErrClosed when the
// store was closed under it, eventstore.ErrUnavailable wrapped around
// failures to reach the server, and anything else as it came.
func (s *Store) classify(parent context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case parent.Err() != nil:
		return parent.Err()
	case s.ctx.Err() != nil:
		return ErrClosed
	case isUnavailable(err):
		return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
	}
	return err
}

// errorCode returns the library's error code of err, unwrapping it
// (kurrent.FromError neither unwraps nor reports success the right way round).
func errorCode(err error) (kurrent.ErrorCode, bool) {
	var e *kurrent.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// answered reports whether code means the server received the request and
// answered it, so the connection works.
func answered(code kurrent.ErrorCode) bool {
	switch code {
	case kurrent.ErrorCodeWrongExpectedVersion, kurrent.ErrorCodeResourceNotFound,
		kurrent.ErrorCodeStreamDeleted, kurrent.ErrorCodeAccessDenied,
		kurrent.ErrorCodeUnauthenticated, kurrent.ErrorCodeResourceAlreadyExists:
		return true
	}
	return false
}

// isUnavailable reports whether err is a failure to reach the server, as
// opposed to an answer from it.
func isUnavailable(err error) bool {
	if code, ok := errorCode(err); ok {
		switch code {
		case kurrent.ErrorCodeConnectionClosed, kurrent.ErrorUnavailable,
			kurrent.ErrorCodeNotLeader, kurrent.ErrorCodeDeadlineExceeded, kurrent.ErrorAborted:
			return true
		case kurrent.ErrorCodeUnknown:
			// The library labels transport errors it does not know as unknown.
		default:
			return false
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.ResourceExhausted:
		return true
	case codes.Unknown:
		// Not a status at all (a dial or transport error) is a failure to reach.
		_, isStatus := status.FromError(err)
		return !isStatus || strings.Contains(err.Error(), "transport")
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// permanent reports whether a subscription failure will not go away by
// subscribing again.
func permanent(err error) bool {
	if code, ok := errorCode(err); ok {
		switch code {
		case kurrent.ErrorCodeAccessDenied, kurrent.ErrorCodeUnauthenticated,
			kurrent.ErrorCodeUnsupportedFeature, kurrent.ErrorCodeResourceNotFound,
			kurrent.ErrorCodeStreamDeleted, kurrent.ErrorCodeParsing:
			return true
		}
		return false
	}
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented,
		codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		return true
	}
	return false
}

// actualRevision reads the stream's current revision out of the library's
// wrong-expected-version error, whose only carrier is its message
// ("... expecting 'X' but got 'Y'"; 'no_stream' for a stream without events).
func actualRevision(err error) (int64, bool) {
	var e *kurrent.Error
	if !errors.As(err, &e) || e.Err() == nil {
		return 0, false
	}
	msg := e.Err().Error()
	const marker = "but got '"
	i := strings.LastIndex(msg, marker)
	if i < 0 {
		return 0, false
	}
	got, _, ok := strings.Cut(msg[i+len(marker):], "'")
	if !ok {
		return 0, false
	}
	if got == "no_stream" {
		return eventstore.NoRevision, true
	}
	n, perr := strconv.ParseInt(got, 10, 64)
	return n, perr == nil && n >= 0
}

// libraryLogger routes the library's log lines to l. The library logs
// ordinary events (a subscription closed by its caller, a discovery
// attempt) as errors or information, so its errors and warnings become
// warnings, cancellations and everything else debug.
func libraryLogger(l *slog.Logger) kurrent.LoggingFunc {
	return func(level kurrent.LogLevel, format string, args ...any) {
		lvl := slog.LevelDebug
		if level == kurrent.LogError || level == kurrent.LogWarn {
			lvl = slog.LevelWarn
			for _, a := range args {
				if err, ok := a.(error); ok && (errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled) {
					lvl = slog.LevelDebug
				}
			}
		}
		ctx := context.Background()
		if l.Enabled(ctx, lvl) {
			l.Log(ctx, lvl, "eventstoredb client: "+fmt.Sprintf(format, args...))
		}
	}
}
