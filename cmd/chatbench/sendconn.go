package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sendConns are the keep-alive connections of sends, the request every
// load scenario makes most. A send writes its request and reads the answer
// with http.ReadResponse on the caller's goroutine: http.Transport hands
// each request to a reading and a writing goroutine of its connection, and
// on this 2-core machine the load client's CPU is taken from the server it
// measures. Safe for concurrent use; a connection serves one send at a time.
type sendConns struct {
	addr string // host:port
	free chan *sendConn
}

// sendConn is one keep-alive connection and its reader.
type sendConn struct {
	conn   net.Conn
	br     *bufio.Reader
	reused bool // it has answered a request before
}

// sendTimeout bounds a send, as the REST client's timeout does.
const sendTimeout = 30 * time.Second

func newSendConns(addr string) *sendConns {
	return &sendConns{addr: addr, free: make(chan *sendConn, 4096)}
}

// get returns an idle connection, or dials one.
func (p *sendConns) get(ctx context.Context) (*sendConn, error) {
	select {
	case c := <-p.free:
		return c, nil
	default:
	}
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &sendConn{conn: conn, br: bufio.NewReaderSize(conn, 4096)}, nil
}

// put keeps c for the next send, or closes it when enough are idle.
func (p *sendConns) put(c *sendConn) {
	select {
	case p.free <- c:
	default:
		c.conn.Close()
	}
}

// errIdleClosed is a reused connection the server closed while it was
// idle, before it read the request: the request can go again on a new one.
var errIdleClosed = errors.New("connection closed while idle")

// post sends req (a whole HTTP/1.1 request) and returns the status and up to
// 300 bytes of the body of an answer other than want.
func (p *sendConns) post(ctx context.Context, req []byte, want int) (int, string, error) {
	for {
		c, err := p.get(ctx)
		if err != nil {
			return 0, "", err
		}
		status, body, keep, err := c.roundTrip(ctx, req, want)
		if err == nil {
			if keep {
				c.reused = true
				p.put(c)
			} else {
				c.conn.Close()
			}
			return status, body, nil
		}
		c.conn.Close()
		if !errors.Is(err, errIdleClosed) {
			return 0, "", err
		}
	}
}

// roundTrip writes req and reads the answer; keep is false when the server
// closes the connection after it.
func (c *sendConn) roundTrip(ctx context.Context, req []byte, want int) (status int, body string, keep bool, err error) {
	if err := c.conn.SetDeadline(time.Now().Add(sendTimeout)); err != nil {
		return 0, "", false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(req); err != nil {
		return 0, "", false, c.idleClosed(err)
	}
	if _, err := c.br.Peek(1); err != nil {
		return 0, "", false, c.idleClosed(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", false, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		body = strings.TrimSpace(string(b))
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, "", false, err
	}
	return resp.StatusCode, body, !resp.Close, nil
}

// idleClosed marks the error of a reused connection that the server had
// closed before the request reached it.
func (c *sendConn) idleClosed(err error) error {
	if c.reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return fmt.Errorf("%w: %w", errIdleClosed, err)
	}
	return err
}

// sendRequest is the bytes of a POST /send-message/ of text to room by the
// holder of token, with header (a name and a value) when it is set.
func sendRequest(host, token string, room int64, text string, header [2]string) ([]byte, error) {
	q, err := json.Marshal(text)
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(q)+48)
	body = append(body, `{"conversation_id":`...)
	body = strconv.AppendInt(body, room, 10)
	body = append(body, `,"text":`...)
	body = append(body, q...)
	body = append(body, '}')
	req := make([]byte, 0, 256+len(token)+len(body))
	req = append(req, "POST /send-message/ HTTP/1.1\r\nHost: "...)
	req = append(req, host...)
	req = append(req, "\r\nAuthorization: Bearer "...)
	req = append(req, token...)
	if header[0] != "" {
		req = append(req, "\r\n"...)
		req = append(req, header[0]...)
		req = append(req, ": "...)
		req = append(req, header[1]...)
	}
	req = append(req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n\r\n"...)
	return append(req, body...), nil
}
