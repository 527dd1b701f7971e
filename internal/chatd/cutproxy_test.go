package chatd_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// cutProxy passes TCP connections to a server until cut: then it closes
// every connection it carries and holds new ones (accepted, not passed on)
// until restored. A browser behind it sees its connections drop and its
// reconnects hang, as on a network outage.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	gen   int                   // counts cuts; a connection of an older generation is closed
	gate  chan struct{}         // closed while connections pass
	conns map[net.Conn]struct{} // every open connection, both sides
	done  chan struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, gate: make(chan struct{}), conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	close(p.gate)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

// URL is the proxy's base URL.
func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve(client net.Conn) {
	p.mu.Lock()
	gen, gate := p.gen, p.gate
	p.conns[client] = struct{}{}
	p.mu.Unlock()
	defer p.drop(client)
	select {
	case <-gate:
	case <-p.done:
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer p.drop(up)
	p.mu.Lock()
	if gen != p.gen { // cut while dialling; the client side is closed already
		p.mu.Unlock()
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(up, client); p.drop(up) })
	_, _ = io.Copy(client, up)
	p.drop(client)
	wg.Wait()
}

func (p *cutProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// cut closes every connection and holds new ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	p.gate = make(chan struct{})
	for c := range p.conns {
		c.Close()
	}
}

// restore lets held and new connections through again.
func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.gate)
}
