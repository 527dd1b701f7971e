package chatd_test

// Request bodies that trickle are answered 408 and their connection closed.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
)

func TestSlowBodies(t *testing.T) {
	t.Parallel()
	// A server for the setup, and a second one on the same database and
	// key where any body is late at once: its first bytes are due within
	// a nanosecond and the rest at a gigabyte a second. The client below
	// sends part of its body and then nothing: the deadline passes however
	// slow the machine is.
	var cfg chatd.Config
	s := startServer(t, func(c *chatd.Config) { c.JWTKeyFile = filepath.Join(t.TempDir(), "jwt-ed25519.pem") }, capture(&cfg))
	a := s.newUser()
	room := s.room(a)
	slowCfg := cfg
	slowCfg.DataDir = t.TempDir()
	slowCfg.BodyTimeout, slowCfg.BodyMinRate = time.Nanosecond, 1<<30
	slow := startWith(t, slowCfg)

	trickle := func(t *testing.T, head, partial string, status int) {
		t.Helper()
		conn, err := net.Dial("tcp", slow.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, head+partial); err != nil {
			t.Fatal(err)
		}
		// The deadline is the server's; this one only keeps a broken
		// server from hanging the test.
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("read the answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status || status == http.StatusRequestTimeout && !strings.Contains(string(body), "The request body arrived too slowly.") {
			t.Fatalf("answer %d %s; want %d", resp.StatusCode, body, status)
		}
		// The server closes the connection: the rest of the body can never
		// be taken for a next request.
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Fatalf("after the answer: %q, %v; want the connection closed (EOF)", rest, err)
		}
	}

	t.Run("JSON", func(t *testing.T) {
		trickle(t, "POST /auth/register/ HTTP/1.1\r\nHost: chat\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", `{"user`, http.StatusRequestTimeout)
	})

	t.Run("refused unread", func(t *testing.T) {
		// No token: 401 before the body is read; the server's drain of
		// the body after the answer is bounded too.
		trickle(t, "POST /send-message/ HTTP/1.1\r\nHost: chat\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\n{\"con\r\n", http.StatusUnauthorized)
	})

	t.Run("multipart", func(t *testing.T) {
		head := fmt.Sprintf("POST /send-message/ HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: multipart/form-data; boundary=XX\r\nTransfer-Encoding: chunked\r\n\r\n", a.Access)
		part := fmt.Sprintf("--XX\r\nContent-Disposition: form-data; name=\"conversation_id\"\r\n\r\n%d\r\n--XX\r\n"+
			"Content-Disposition: form-data; name=\"attachment_picture\"; filename=\"p.png\"\r\n\r\n\x89PNG", room)
		trickle(t, head, fmt.Sprintf("%x\r\n%s\r\n", len(part), part), http.StatusRequestTimeout)
		if got, _ := s.conversationMessages(t, a, room, ""); len(got) != 0 {
			t.Fatalf("%d messages stored; want none", len(got))
		}
	})
}
