package http

import (
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/evchat/evchat/realtime"
)

// Keepalive of every socket: a ping goes out every pingPeriod, and a
// socket whose pong does not come back within pongWait is cut.
const (
	pongWait   = 60 * time.Second
	pingPeriod = pongWait * 9 / 10
)

var (
	errSocketClosed = errors.New("websocket closed")
	errQueueFull    = errors.New("websocket queue full")
)

// socket is one WebSocket connection. One goroutine reads it for its whole
// life. Frames to send wait in a queue, and a goroutine writes them only
// while there are some: an idle socket holds its reading goroutine, its
// connection and nothing more (no writing goroutine, no queue, no write
// buffer). Frames go out in the order they were queued, one writer at a
// time.
type socket struct {
	h    *hub
	conn *websocket.Conn
	// so is the socket's realtime session: set before the socket is read
	// or written to by the hub, never changed after.
	so *realtime.Session
	// ping sends the keepalive ping every pingPeriod.
	ping *time.Timer

	mu      sync.Mutex
	queue   []outFrame // frames queued and not yet written (nil when none)
	pingDue bool       // a ping is to be written
	writing bool       // a writer goroutine runs
	closed  bool       // nothing more is written: a close frame went out, a write failed, or the connection ended
}

// outFrame is a frame to write: a text frame, or the close frame (the
// last a socket writes).
type outFrame struct {
	close bool
	data  []byte
}

func newSocket(h *hub, conn *websocket.Conn) *socket {
	ws := &socket{h: h, conn: conn}
	ws.ping = time.AfterFunc(pingPeriod, ws.pingTick)
	return ws
}

// Write queues a text frame. A socket with socketQueue frames queued
// refuses it, and the hub is told (realtime.Hub.Overflowed).
func (ws *socket) Write(frame []byte) error {
	return ws.enqueue(outFrame{data: frame})
}

// Close queues a close frame behind the frames queued: once it is written,
// the connection is closed.
func (ws *socket) Close(code int, reason string) error {
	return ws.enqueue(outFrame{close: true, data: websocket.FormatCloseMessage(code, reason)})
}

// IsClosed reports whether the socket writes no more.
func (ws *socket) IsClosed() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.closed
}

func (ws *socket) enqueue(f outFrame) error {
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return errSocketClosed
	}
	if len(ws.queue) >= socketQueue {
		ws.mu.Unlock()
		if ws.so != nil {
			ws.h.rt.Overflowed(ws.so)
		}
		return errQueueFull
	}
	ws.queue = append(ws.queue, f)
	start := !ws.writing
	ws.writing = true
	ws.mu.Unlock()
	if start {
		go ws.writeLoop()
	}
	return nil
}

// pingTick asks for a ping and arms the next.
func (ws *socket) pingTick() {
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return
	}
	ws.pingDue = true
	start := !ws.writing
	ws.writing = true
	ws.mu.Unlock()
	if start {
		go ws.writeLoop()
	}
	ws.ping.Reset(pingPeriod)
}

// writeLoop writes the queued frames and the pings due, and returns once
// there are none left (or the socket closed).
func (ws *socket) writeLoop() {
	for {
		ws.mu.Lock()
		var f outFrame
		kind := websocket.PingMessage
		switch {
		case ws.closed:
			ws.writing = false
			ws.mu.Unlock()
			return
		case ws.pingDue:
			ws.pingDue = false
		case len(ws.queue) > 0:
			f = ws.queue[0]
			ws.queue[0] = outFrame{}
			if ws.queue = ws.queue[1:]; len(ws.queue) == 0 {
				ws.queue = nil // an idle socket keeps no queue
			}
			kind = websocket.TextMessage
			if f.close {
				kind = websocket.CloseMessage
			}
		default:
			ws.writing = false
			ws.mu.Unlock()
			return
		}
		ws.mu.Unlock()
		if f.data == nil {
			f.data = []byte{}
		}
		_ = ws.conn.SetWriteDeadline(time.Now().Add(ws.h.writeWait))
		if err := ws.conn.WriteMessage(kind, f.data); err != nil || kind == websocket.CloseMessage {
			ws.shut()
			continue // closed: the loop ends
		}
		if kind == websocket.TextMessage {
			ws.h.sent(ws)
		}
	}
}

// shut stops all writing and closes the connection (its reader then ends).
func (ws *socket) shut() {
	ws.mu.Lock()
	was := ws.closed
	ws.closed, ws.queue, ws.pingDue = true, nil, false
	ws.mu.Unlock()
	if !was {
		ws.ping.Stop()
		_ = ws.conn.Close()
	}
}

// read reads the socket's frames until the connection ends, then closes
// it and tells the hub.
func (ws *socket) read() {
	ws.conn.SetReadLimit(ws.h.maxMessage)
	_ = ws.conn.SetReadDeadline(time.Now().Add(pongWait))
	ws.conn.SetPongHandler(func(string) error {
		return ws.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	for {
		t, msg, err := ws.conn.ReadMessage()
		if err != nil {
			break
		}
		switch t {
		case websocket.TextMessage:
			ws.h.onText(ws, msg)
		case websocket.BinaryMessage:
			ws.h.onBinary(ws)
		}
	}
	ws.shut()
	ws.h.ended(ws)
}
