package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// sendServer answers POST /send-message/ as chatd does, and records what it
// received.
type sendServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	got      []string // "token room text header"
	answer   func(w http.ResponseWriter, n int64)
}

func newSendServer(t *testing.T, answer func(w http.ResponseWriter, n int64)) *sendServer {
	s := &sendServer{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		var body struct {
			ConversationID int64  `json:"conversation_id"`
			Text           string `json:"text"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/send-message/" || r.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, strings.Join([]string{r.Header.Get("Authorization"), strconv.FormatInt(body.ConversationID, 10), body.Text,
			r.Header.Get("X-Chat-Position")}, " "))
		s.mu.Unlock()
		if s.answer != nil {
			s.answer(w, n)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":1}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sendServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// A send writes what the REST client would (the body a JSON object, any
// text escaped), and a header carried by the context.
func TestSendWritesTheRequest(t *testing.T) {
	s := newSendServer(t, nil)
	a := newAPI(s.URL)
	u := &user{token: "tok"}
	if err := a.send(t.Context(), u, 1, `say "hi"\ çà`); err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(t.Context(), headerKey{}, [2]string{"X-Chat-Position", "5/5"})
	if err := a.send(ctx, u, 2, ""); err != nil {
		t.Fatal(err)
	}
	want := []string{`Bearer tok 1 say "hi"\ çà `, "Bearer tok 2  5/5"}
	if got := s.received(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server received %q; want %q", got, want)
	}
}

// An answer other than 201 is an httpError with the status and the body.
func TestSendReportsTheStatus(t *testing.T) {
	s := newSendServer(t, func(w http.ResponseWriter, _ int64) {
		http.Error(w, `{"error":"not a member"}`, http.StatusForbidden)
	})
	err := newAPI(s.URL).send(t.Context(), &user{token: "t"}, 1, "x")
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusForbidden || he.body != `{"error":"not a member"}` {
		t.Fatalf("send = %v; want a 403 httpError with the body", err)
	}
}

// A kept connection that the server closed while it was idle is replaced
// and the send goes once; a connection the server closes after its answer
// is not used again, and its send is not repeated.
func TestSendGoesOnceOverClosedConnections(t *testing.T) {
	s := newSendServer(t, func(w http.ResponseWriter, n int64) {
		if n == 3 {
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusCreated)
	})
	a := newAPI(s.URL)
	u := &user{token: "t"}
	if err := a.send(t.Context(), u, 1, "first"); err != nil {
		t.Fatal(err)
	}
	s.CloseClientConnections()
	for _, text := range []string{"second", "third", "fourth"} {
		if err := a.send(t.Context(), u, 1, text); err != nil {
			t.Fatalf("send %s: %v", text, err)
		}
	}
	if n := s.requests.Load(); n != 4 {
		t.Errorf("the server answered %d requests; want 4, one per send", n)
	}
}

// A cancelled context ends a send that waits for its answer.
func TestSendEndsWithItsContext(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	s := newSendServer(t, func(w http.ResponseWriter, _ int64) {
		close(arrived)
		<-release
		w.WriteHeader(http.StatusCreated)
	})
	defer close(release)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	if err := newAPI(s.URL).send(ctx, &user{token: "t"}, 1, "x"); err == nil {
		t.Fatal("send returned no error after its context ended")
	}
}
