// Package esdbtest is a test double of the EventStoreDB gRPC wire protocol,
// not a store: an in-process gRPC server that speaks the subset of the
// protocol that EventStore-Client-Go v4 uses for appends, stream and $all
// reads and catch-up subscriptions, over an in-memory log that is lost when
// the server is closed. It exists so that the esdb adapter can be tested
// without an EventStoreDB server; the adapter's real-server test is what
// proves the adapter against the real thing.
//
// What it models, after the server's own code: the append commit check
// (every expected-revision case, idempotent retries by event id, the
// wrong_expected_version reply), inclusive forward and exclusive backward
// $all reads, stream reads both ways with stream_not_found, subscriptions
// (confirmation, catch-up, caught_up, live), recorded-event metadata (type,
// content-type, created in .NET ticks), structured or string UUIDs as the
// request asks, commit position equal to prepare position as in log format
// V2, and a few $-prefixed system events in $all. It does not model
// deletion, links, filters (a filtered read is refused), access control,
// clustering, gossip, batch append, persistent subscriptions or
// projections; their RPCs answer Unimplemented.
package esdbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
)

// Options tune a Server. The zero value is usable.
type Options struct {
	// Addr is the TCP address to listen on. Default "127.0.0.1:0".
	Addr string
	// CommitDelay, when set, is called by every append and slept for after
	// the request is read and before the events are committed, so that
	// concurrent appends overtake one another. Commits themselves stay
	// atomic and in position order, as in the real server's single writer:
	// a reader of $all never sees a later position before an earlier one.
	CommitDelay func() time.Duration
	// NoCaughtUp makes subscriptions behave like servers before 23.10,
	// which never send the caught_up message.
	NoCaughtUp bool
	// NoIdempotentPosition makes idempotent appends answer without a log
	// position, as older servers do.
	NoIdempotentPosition bool
	// SystemEvents is the number of $-prefixed system events written at
	// start-up, as a fresh database has. Default 2; negative means none.
	SystemEvents int
}

// Server is a running test double. Create it with New or Start; Close it.
type Server struct {
	opts Options
	log  *memlog

	mu     sync.Mutex
	addr   string
	srv    *grpc.Server
	serve  chan struct{} // closed when the current Serve returns
	closed bool
}

// New starts a server listening on opts.Addr. It returns an error when the
// address cannot be listened on.
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s := &Server{opts: opts, log: newMemlog()}
	n := opts.SystemEvents
	if n == 0 {
		n = 2
	}
	for i := range max(n, 0) {
		s.AppendSystemEvent(fmt.Sprintf("$$$scavenges-%d", i), "$metadata")
	}
	if err := s.listen(opts.Addr); err != nil {
		return nil, err
	}
	return s, nil
}

// Start is New for tests: it fails t on error and closes the server in t's cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("esdbtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("esdbtest: listen: %w", err)
	}
	// The client pings every 10 s by default, idle or not; a real server
	// lets it. gRPC's default policy (at most one ping per 5 minutes)
	// would answer the third ping with GOAWAY "too_many_pings" and cut the
	// connection under a long test.
	srv := grpc.NewServer(grpc.WaitForHandlers(true),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	streams.RegisterStreamsServer(srv, &streamsServer{s: s})
	serverfeatures.RegisterServerFeaturesServer(srv, featuresServer{})
	done := make(chan struct{})
	s.mu.Lock()
	s.addr, s.srv, s.serve = ln.Addr().String(), srv, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns when stopped
	}()
	return nil
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns the connection string for the server:
// esdb://127.0.0.1:PORT?tls=false.
func (s *Server) URL() string { return "esdb://" + s.Addr() + "?tls=false" }

// Stop simulates an outage: it closes the listener and every connection,
// ending in-flight calls and subscriptions with transport errors. The log
// is kept; Resume serves it again on the same address.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, done := s.srv, s.serve
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
		<-done
	}
}

// Resume serves again on the address of the stopped server. It returns an
// error when the server was closed or the address is taken meanwhile.
func (s *Server) Resume() error {
	s.mu.Lock()
	closed, running, addr := s.closed, s.srv != nil, s.addr
	s.mu.Unlock()
	switch {
	case closed:
		return errors.New("esdbtest: server closed")
	case running:
		return nil
	}
	return s.listen(addr)
}

// Close stops the server for good. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Stop()
}

// AppendSystemEvent writes a $-prefixed system event (type and stream as
// given) to the log, as the server's own subsystems do, so that readers of
// $all meet events they must skip.
func (s *Server) AppendSystemEvent(stream, eventType string) {
	s.log.append(stream, expectation{kind: expectAny}, []proposed{{
		id: uuid.New(), eventType: eventType, contentType: "application/json",
		data: []byte(`{"$maxAge":2592000}`),
	}}, false)
}

// Len returns the number of events in the log, system events included.
func (s *Server) Len() int {
	recs, _, _ := s.log.snapshot("", true)
	return len(recs)
}

func (s *Server) commitDelay(ctx context.Context) error {
	if s.opts.CommitDelay == nil {
		return nil
	}
	t := time.NewTimer(s.opts.CommitDelay())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
