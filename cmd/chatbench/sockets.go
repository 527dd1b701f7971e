package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wsClient is one open WebSocket and the goroutine that reads it.
type wsClient struct {
	conn    *websocket.Conn
	closing atomic.Bool
	done    chan struct{} // closed when reading stops
	err     error         // why reading stopped; valid after done
}

// socketSpec says who opens a socket on which room.
type socketSpec struct {
	user *user
	room int64
}

// openSockets opens one socket per spec, concurrency at a time. Each socket
// gets a goroutine that reads its frames, answering the server's pings, and
// passes them to onFrame with the spec's index (nil: frames are dropped).
// On failure it closes the sockets it opened.
func openSockets(ctx context.Context, a *api, specs []socketSpec, concurrency int, onFrame func(i int, data []byte)) ([]*wsClient, error) {
	socks := make([]*wsClient, len(specs))
	err := parallel(ctx, len(specs), concurrency, func(ctx context.Context, i int) error {
		conn, err := a.dialRoom(ctx, specs[i].user, specs[i].room)
		if err != nil {
			return err
		}
		s := &wsClient{conn: conn, done: make(chan struct{})}
		socks[i] = s
		go s.read(i, onFrame)
		return nil
	})
	if err != nil {
		var opened []*wsClient
		for _, s := range socks {
			if s != nil {
				opened = append(opened, s)
			}
		}
		closeSockets(opened)
		return nil, err
	}
	return socks, nil
}

func (s *wsClient) read(i int, onFrame func(int, []byte)) {
	defer close(s.done)
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			s.err = err
			return
		}
		if onFrame != nil {
			onFrame(i, data)
		}
	}
}

// closeSockets closes the sockets with a normal close frame, waiting a
// little for each server to answer, all at once.
func closeSockets(socks []*wsClient) {
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Go(func() {
			s.closing.Store(true)
			deadline := time.Now().Add(2 * time.Second)
			_ = s.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
			_ = s.conn.SetReadDeadline(deadline.Add(time.Second))
			<-s.done
			_ = s.conn.Close()
		})
	}
	wg.Wait()
}

// unexpectedClosures counts, by reason, the sockets that stopped reading
// before the benchmark closed them (dropped by the server, say).
func unexpectedClosures(socks []*wsClient) map[string]int {
	out := map[string]int{}
	for _, s := range socks {
		if s.closing.Load() {
			continue
		}
		select {
		case <-s.done:
			reason := "closed"
			if s.err != nil {
				reason = s.err.Error()
				var ce *websocket.CloseError
				if errors.As(s.err, &ce) {
					reason = ce.Error()
				}
			}
			out[reason]++
		default:
		}
	}
	return out
}
