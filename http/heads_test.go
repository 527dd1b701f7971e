package http

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/evchat/evchat/eventstore"
)

// stepHead is a log whose head look-ups each wait for a step of the test,
// which then answers with the look-up's number as the position.
type stepHead struct {
	started chan int   // the number of each look-up as it starts
	answer  chan error // the answer of the look-up in flight
	calls   int        // look-ups so far (only its goroutine)
	mu      sync.Mutex // guards calls
	_       eventstore.Position
}

func newStepHead() *stepHead {
	return &stepHead{started: make(chan int, 16), answer: make(chan error)}
}

func (s *stepHead) Head(ctx context.Context) (eventstore.Position, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	s.started <- n
	if err := <-s.answer; err != nil {
		return eventstore.Position{}, err
	}
	return eventstore.Position{Commit: uint64(n), Prepare: uint64(n)}, nil
}

// waitCallers returns once n calls share the look-up being gathered.
func waitCallers(h *heads, n int) {
	for {
		h.mu.Lock()
		got := 0
		if h.next != nil {
			got = h.next.callers
		}
		h.mu.Unlock()
		if got == n {
			return
		}
		runtime.Gosched()
	}
}

type headAnswer struct {
	pos eventstore.Position
	err error
}

func callHead(ctx context.Context, h *heads) chan headAnswer {
	out := make(chan headAnswer, 1)
	go func() {
		p, err := h.Head(ctx)
		out <- headAnswer{p, err}
	}()
	return out
}

// The calls made while a look-up is in flight do not take its answer,
// which may predate them: they share one look-up that starts after it.
func TestHeadsShareTheNextLookUp(t *testing.T) {
	log := newStepHead()
	h := newHeads(log.Head)
	first := callHead(t.Context(), h)
	if n := <-log.started; n != 1 {
		t.Fatalf("look-up %d started; want 1", n)
	}
	var later []chan headAnswer
	for range 5 {
		later = append(later, callHead(t.Context(), h))
	}
	waitCallers(h, 5)
	log.answer <- nil
	if a := <-first; a.err != nil || a.pos.Commit != 1 {
		t.Fatalf("first call = %v, %v; want the first look-up's head", a.pos, a.err)
	}
	if n := <-log.started; n != 2 {
		t.Fatalf("look-up %d started; want 2", n)
	}
	log.answer <- nil
	for i, c := range later {
		if a := <-c; a.err != nil || a.pos.Commit != 2 {
			t.Errorf("call %d made during the first look-up = %v, %v; want the second look-up's head", i, a.pos, a.err)
		}
	}
	// Nothing in flight now: a new call starts a look-up of its own.
	next := callHead(t.Context(), h)
	if n := <-log.started; n != 3 {
		t.Fatalf("look-up %d started; want 3", n)
	}
	log.answer <- nil
	if a := <-next; a.err != nil || a.pos.Commit != 3 {
		t.Errorf("call after the others = %v, %v; want the third look-up's head", a.pos, a.err)
	}
}

// A call whose context ends returns at once; the others sharing its
// look-up still get its answer, errors included.
func TestHeadsCallerGivesUpAlone(t *testing.T) {
	log := newStepHead()
	h := newHeads(log.Head)
	first := callHead(t.Context(), h)
	<-log.started
	ctx, cancel := context.WithCancel(t.Context())
	quitter := callHead(ctx, h)
	stayer := callHead(t.Context(), h)
	waitCallers(h, 2)
	cancel()
	if a := <-quitter; !errors.Is(a.err, context.Canceled) {
		t.Errorf("call whose context ended = %v, %v; want context.Canceled", a.pos, a.err)
	}
	log.answer <- nil
	<-first
	<-log.started
	failed := errors.New("log unreachable")
	log.answer <- failed
	if a := <-stayer; !errors.Is(a.err, failed) {
		t.Errorf("call sharing a failed look-up = %v, %v; want its error", a.pos, a.err)
	}
}
