package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// server starts chatd on its own database and returns it with its URL.
func server(t *testing.T) (*chatd.Main, string) {
	t.Helper()
	return serverIn(t, t.TempDir())
}

// serverIn is server with the data folder dataDir.
func serverIn(t *testing.T, dataDir string) (*chatd.Main, string) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := chatd.New(context.Background(), chatd.Config{Addr: "127.0.0.1:0", DatabaseURL: db, DataDir: dataDir, BcryptCost: 4}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	return m, db
}

func post(t *testing.T, url, token string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, resp.StatusCode, out)
	}
	return out
}

func chatctl(t *testing.T, db string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, append([]string{"--database-url", db}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestOperations(t *testing.T) {
	m, db := server(t)
	base := m.URL()
	post(t, base+"/auth/register/", "", map[string]string{"username": "ann", "password": "password-ann"})
	tok := post(t, base+"/auth/login/", "", map[string]string{"username": "ann", "password": "password-ann"})["access"].(string)
	post(t, base+"/create-chatroom/", tok, map[string]any{"type": "group", "name": "ops"})
	for _, text := range []string{"one", "two"} {
		post(t, base+"/send-message/", tok, map[string]any{"conversation_id": 1, "text": text})
	}

	t.Run("audit stream in log order", func(t *testing.T) {
		out, errOut, code := chatctl(t, db, "audit", "stream", "conversation-1")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "chat.conversation_created") ||
			!strings.Contains(lines[1], `"one"`) || !strings.Contains(lines[2], `"two"`) {
			t.Fatalf("audit output:\n%s", out)
		}
		for _, l := range lines {
			if !strings.Contains(l, "actor=1") || strings.Contains(l, "request=-") {
				t.Errorf("line lacks who and which request: %s", l)
			}
		}
	})
	t.Run("audit user as JSON lines, secrets redacted", func(t *testing.T) {
		out, errOut, code := chatctl(t, db, "audit", "user", "1", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var types []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e struct {
				Type string
				Data map[string]any
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("not a JSON line: %q", l)
			}
			if h, ok := e.Data["password_hash"]; ok && h != "[redacted]" {
				t.Errorf("password hash printed: %v", h)
			}
			types = append(types, e.Type)
		}
		if len(types) != 5 {
			t.Errorf("user 1 caused %v; want reservation, registration, room, two messages", types)
		}
	})
	t.Run("status", func(t *testing.T) {
		out, errOut, code := chatctl(t, db, "projections", "status")
		if code != 0 || !strings.Contains(out, "chat") || !strings.Contains(out, "log head:") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		// The running server projects: it holds the lease.
		if want := fmt.Sprintf(" pid %d (epoch ", os.Getpid()); !strings.Contains(out, "projector: ") || !strings.Contains(out, want) {
			t.Fatalf("status does not name the projecting process (%q):\n%s", want, out)
		}
	})
	t.Run("rebuild then verify", func(t *testing.T) {
		if out, errOut, code := chatctl(t, db, "projections", "rebuild", "chat"); code != 0 || !strings.Contains(out, "is live") {
			t.Fatalf("rebuild exit %d\n%s%s", code, out, errOut)
		}
		post(t, base+"/send-message/", tok, map[string]any{"conversation_id": 1, "text": "three"})
		out, errOut, code := chatctl(t, db, "projections", "verify")
		if code != 0 || !strings.Contains(out, "no difference") {
			t.Fatalf("verify exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("replay", func(t *testing.T) {
		if out, errOut, code := chatctl(t, db, "projections", "replay", "--from", "0"); code != 0 || !strings.Contains(out, "replay: ") {
			t.Fatalf("replay exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		cases := [][]string{
			{"projections", "rebuild", "nope"},
			{"projections", "replay"},
			{"projections", "replay", "--from", "garbage"},
			{"audit", "user", "x"},
			{"frobnicate"},
		}
		for _, args := range cases {
			if _, _, code := chatctl(t, db, args...); code != 2 {
				t.Errorf("chatctl %v exit %d; want 2", args, code)
			}
		}
		for _, args := range [][]string{{"--help"}, {"projections", "rebuild", "--help"}, {"audit", "stream", "--help"}} {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), args, &out, &errOut); code != 0 || errOut.Len()+out.Len() == 0 {
				t.Errorf("chatctl %v: exit %d, no help text", args, code)
			}
		}
	})
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "chatctl ") {
		t.Errorf("chatctl version: exit %d, stdout %q, stderr %q; want exit 0 and a line starting with \"chatctl \"", code, out.String(), errOut.String())
	}
}

// A data folder without an installation is refused, never made: an
// operator who mistyped it must not get a new, empty database.
func TestRefusesDataFolderWithoutData(t *testing.T) {
	dir := t.TempDir() + "/typo"
	for _, args := range [][]string{{"migrate"}, {"projections", "status"}, {"audit", "stream", "user-1"}} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"--database-url", "", "--data-dir", dir}, args...), &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), "holds no chat data") {
			t.Errorf("chatctl %v in an empty data folder: exit %d, stderr %q; want exit 1 and \"holds no chat data\"", args, code, errOut.String())
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("chatctl %v made the data folder (stat: %v)", args, err)
		}
	}
}
