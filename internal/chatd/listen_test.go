package chatd_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/evchat/evchat/internal/chatd"
)

// TestTakenPort: a taken address fails New with an error naming it and
// the setting that changes it, before the database is touched (the
// database URL here points nowhere: opening it first would fail with a
// different error).
func TestTakenPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		name    string
		cfg     chatd.Config
		setting string
	}{
		{"api", chatd.Config{Addr: ln.Addr().String()}, "CHAT_ADDR"},
		{"metrics", chatd.Config{Addr: "127.0.0.1:0", MetricsAddr: ln.Addr().String()}, "CHAT_METRICS_ADDR"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.DatabaseURL = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"
			cfg.DataDir = t.TempDir()
			m, err := chatd.New(context.Background(), cfg, nil)
			if err == nil {
				m.Close()
				t.Fatal("New on a taken address succeeded; want an error")
			}
			msg := err.Error()
			for _, want := range []string{"listen on " + ln.Addr().String(), "another process uses this address", c.setting} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}
