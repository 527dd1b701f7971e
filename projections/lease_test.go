package projections_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/projections"
)

// TestLeaderCutOffIsReplaced: leader A's database connections all go
// through a proxy that stops forwarding in both directions without closing
// anything, as when A's host or network dies. The server never notices, so
// A's sessions live on; B must still take the lease once it expires and
// project. A's batch sent into the black hole, delivered when the network
// comes back, must be refused by the fence.
func TestLeaderCutOffIsReplaced(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	chat := projections.NewChat(l.reg)
	proxy := newBlackholeProxy(t, l.pool.Config().ConnConfig.Host, l.pool.Config().ConnConfig.Port)

	// A's pool holds one connection, so every batch uses the one that
	// projected before: its statements are prepared, and the stale batch
	// goes out as one pipeline without waiting for a reply first. No ping
	// on acquire either, for the same reason.
	poolA := newPool(t, l.url, func(c *pgxpool.Config) {
		c.ConnConfig.Host, c.ConnConfig.Port = proxy.host, proxy.port
		c.MaxConns = 1
		c.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	})
	storeA := postgres.New(poolA, postgres.Options{PollInterval: 50 * time.Millisecond})
	gatedA := newGatedStore(storeA)
	projA := projections.NewProjector(poolA, gatedA, chat, projections.ProjectorOptions{})
	projB := projections.NewProjector(l.pool, l.store, chat, projections.ProjectorOptions{})

	type term struct {
		who   string
		lease projections.Lease
		at    time.Time
	}
	terms := make(chan term, 16)
	lead := func(who string, p *projections.Projector) func(context.Context, projections.Lease) error {
		return func(ctx context.Context, lease projections.Lease) error {
			terms <- term{who, lease, time.Now()}
			return p.RunLeased(ctx, lease)
		}
	}
	opts := projections.LeaderOptions{Logger: slog.New(slog.DiscardHandler), Retry: 100 * time.Millisecond} // the default TTL, 3s
	stopA := startLeader(t, poolA, opts, lead("A", projA))
	if got := recv(t, "a first leader", terms); got.who != "A" {
		t.Fatalf("first leader = %s; want A", got.who)
	}
	startLeader(t, l.pool, opts, lead("B", projB))

	// A projects a join (so that its connection has every statement of the
	// next batch prepared), then reads the next join and holds it.
	l.room(t, 3)
	l.waitCheckpoint(t, l.join(t, 3))
	held := gatedA.arm()
	join := l.join(t, 2)
	if got := recv(t, "A to read the join", held.held); got[len(got)-1].Position != join {
		t.Fatalf("A holds a batch through %s; want it through the join at %s", got[len(got)-1].Position, join)
	}
	l.leave(t, 2)

	proxy.blackhole()
	cut := time.Now()
	close(held.release) // A sends its batch into the black hole
	next := recv(t, "a leader after A was cut off", terms)
	if next.who != "B" {
		t.Fatalf("leader after the cut = %s; want B", next.who)
	}
	took := next.at.Sub(cut)
	msg := l.message(t, 1)
	l.waitCheckpoint(t, msg)
	t.Logf("B took over %v after A was cut off, and projected %v after it", took.Round(time.Millisecond), time.Since(cut).Round(time.Millisecond))
	if l.member(t, 2) {
		t.Fatal("user 2 is a member after B projected the leave")
	}

	// A stops; the network comes back and delivers what A sent on its
	// connections (not the connections it tried to open meanwhile, the
	// cancel requests of the queries it gave up among them), then A's
	// connections close. The server runs A's stale batch (the join) only
	// now, long after B projected the leave.
	stopA()
	proxy.restore()
	storeA.Close()
	poolA.Close()
	proxy.drain(t)
	if l.member(t, 2) {
		t.Fatal("user 2 is a member again: A's stale batch committed after B took over")
	}
	if got := l.checkpoint(t); got != msg {
		t.Fatalf("checkpoint = %s; want %s, where B left it", got, msg)
	}
	state, ok, err := projections.ReadLease(t.Context(), l.pool, projections.ProjectorLease)
	if err != nil || !ok || state.Epoch != next.lease.Epoch || state.ExpiresIn <= 0 {
		t.Fatalf("lease = %+v, %v, %v; want B's, epoch %d, not expired", state, ok, err, next.lease.Epoch)
	}
}

// startLeader runs Leader until the returned stop is called (at the latest
// when the test ends) and checks it returned because it was stopped.
func startLeader(t *testing.T, pool *pgxpool.Pool, o projections.LeaderOptions, fn func(context.Context, projections.Lease) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projections.Leader(ctx, pool, o, fn) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := recv(t, "Leader to stop", done); !errors.Is(err, context.Canceled) {
			t.Errorf("Leader returned %v; want context.Canceled", err)
		}
	})
	t.Cleanup(stop)
	return stop
}

// TestLeaderReleasesOnStop: a leader that stops releases its lease, and
// another takes it at its next try, not after the lease would expire.
func TestLeaderReleasesOnStop(t *testing.T) {
	t.Parallel()
	l := newTestLog(t)
	// A lease that never expires within the test: only the release frees it.
	opts := projections.LeaderOptions{TTL: time.Hour, Retry: 50 * time.Millisecond}
	leads := make(chan string, 4)
	lead := func(who string) func(context.Context, projections.Lease) error {
		return func(ctx context.Context, _ projections.Lease) error {
			leads <- who
			<-ctx.Done()
			return ctx.Err()
		}
	}
	stopA := startLeader(t, l.pool, opts, lead("A"))
	recv(t, "A to lead", leads)
	startLeader(t, l.pool, opts, lead("B"))
	stopA()
	if who := recv(t, "B to lead after A stopped", leads); who != "B" {
		t.Fatalf("leader = %s; want B", who)
	}
}

// blackholeProxy forwards TCP connections to a server until blackhole is
// called; from then until restore it forwards nothing in either direction
// and closes nothing, but keeps what it reads on the connections it
// forwarded to deliver after restore. A connection opened while it is
// black-holed never reaches the server: it is closed at restore.
type blackholeProxy struct {
	ln     net.Listener
	host   string
	port   uint16
	target string
	mu     sync.Mutex
	open   chan struct{} // closed while forwarding
	conns  sync.WaitGroup
}

func newBlackholeProxy(t *testing.T, host string, port uint16) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	p := &blackholeProxy{ln: ln, host: "127.0.0.1", port: uint16(addr.Port),
		target: net.JoinHostPort(host, strconv.Itoa(int(port))), open: make(chan struct{})}
	close(p.open)
	go p.accept()
	t.Cleanup(func() {
		p.restore()
		_ = ln.Close()
	})
	return p
}

func (p *blackholeProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		go p.serve(c)
	}
}

func (p *blackholeProxy) serve(client net.Conn) {
	defer p.conns.Done()
	defer client.Close()
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	select {
	case <-open:
	default:
		<-open
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var wg sync.WaitGroup
	wg.Go(func() { p.forward(server, client) })
	wg.Go(func() { p.forward(client, server) })
	wg.Wait()
}

// forward copies src to dst, holding each read (and the end of src) while
// the proxy is black-holed.
func (p *blackholeProxy) forward(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		open := p.open
		p.mu.Unlock()
		<-open
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = dst.(*net.TCPConn).CloseWrite()
				return
			}
			_ = dst.Close()
			return
		}
	}
}

func (p *blackholeProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = make(chan struct{})
}

func (p *blackholeProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// drain stops accepting and waits until every connection has ended on both
// sides: the server has read all its client sent, up to the end.
func (p *blackholeProxy) drain(t *testing.T) {
	t.Helper()
	_ = p.ln.Close()
	done := make(chan struct{})
	go func() { p.conns.Wait(); close(done) }()
	recv(t, "the proxied connections to end", done)
}
