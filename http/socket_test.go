package http

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// socketPair serves one socket of the layer over a real connection and
// returns it with the client's end.
func socketPair(t *testing.T) (*socket, *websocket.Conn) {
	t.Helper()
	h := &hub{srv: &Server{observer: nopObserver{}}, socks: map[*socket]struct{}{}, writeWait: 10 * time.Second, maxMessage: 1 << 20,
		up: &websocket.Upgrader{}}
	made := make(chan *socket, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := h.up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		ws := newSocket(h, conn)
		made <- ws
		ws.read()
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang fails instead of blocking the suite
	return <-made, client
}

// Frames go out in the order they were queued, then the close frame,
// after which nothing more is written.
func TestSocketWritesInOrderThenCloses(t *testing.T) {
	ws, client := socketPair(t)
	n := socketQueue - 1 // and the close frame: what the queue holds at most
	for i := range n {
		if err := ws.Write(fmt.Appendf(nil, "frame %d", i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := ws.Close(websocket.ClosePolicyViolation, "bye"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		_, msg, err := client.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := fmt.Sprintf("frame %d", i); string(msg) != want {
			t.Fatalf("frame %d = %q; want %q", i, msg, want)
		}
	}
	_, _, err := client.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "bye" {
		t.Fatalf("after the frames: %v; want close 1008 bye", err)
	}
	// The writer shuts the socket just after the close frame went out,
	// which the client may read first: wait for that, without a fixed delay.
	for deadline := time.Now().Add(30 * time.Second); !ws.IsClosed(); {
		if time.Now().After(deadline) {
			t.Fatal("the socket did not shut after its close frame")
		}
		time.Sleep(time.Millisecond)
	}
	if err := ws.Write([]byte("late")); !errors.Is(err, errSocketClosed) {
		t.Fatalf("write after the close frame: %v; want errSocketClosed", err)
	}
}

// A socket whose writer is behind holds at most socketQueue frames and
// refuses the next.
func TestSocketQueueBounded(t *testing.T) {
	ws, _ := socketPair(t)
	ws.mu.Lock()
	ws.writing = true // a writer is busy: nothing drains the queue
	ws.mu.Unlock()
	for i := range socketQueue {
		if err := ws.Write([]byte("x")); err != nil {
			t.Fatalf("frame %d of %d: %v", i, socketQueue, err)
		}
	}
	if err := ws.Write([]byte("one too many")); !errors.Is(err, errQueueFull) {
		t.Fatalf("frame %d: %v; want errQueueFull", socketQueue+1, err)
	}
}

// Once its frames are written an idle socket keeps no queue and no
// writer.
func TestSocketIdleHoldsNothing(t *testing.T) {
	ws, client := socketPair(t)
	for range 3 {
		if err := ws.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, _, err := client.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	// The writer leaves once it finds the queue empty, just after its last
	// write: wait for that, without a fixed delay.
	for deadline := time.Now().Add(30 * time.Second); ; {
		ws.mu.Lock()
		writing, queue := ws.writing, ws.queue
		ws.mu.Unlock()
		if !writing {
			if queue != nil {
				t.Fatalf("idle socket keeps a queue of %d", len(queue))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never left")
		}
		time.Sleep(time.Millisecond)
	}
	// The client going away ends the socket: no more writes.
	_ = client.Close()
	for deadline := time.Now().Add(30 * time.Second); !ws.IsClosed(); {
		if time.Now().After(deadline) {
			t.Fatal("the socket did not notice its connection ended")
		}
		time.Sleep(time.Millisecond)
	}
}
