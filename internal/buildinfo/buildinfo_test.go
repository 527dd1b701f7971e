package buildinfo

import (
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	i := Info{Version: "v1.2.0", Commit: "3faa5eb0123456789abcdef", Time: "2026-12-05T12:00:00Z", Modified: true, Go: "go1.26.8"}
	want := "chatd v1.2.0 commit 3faa5eb01234+modified (2026-12-05T12:00:00Z) go1.26.8"
	if got := i.Line("chatd"); got != want {
		t.Errorf("Line = %q; want %q", got, want)
	}
}

func TestReadInTests(t *testing.T) {
	i := Read()
	if i.Version == "" || i.Commit == "" || i.Time == "" || !strings.HasPrefix(i.Go, "go") {
		t.Errorf("Read() = %+v; want every field set", i)
	}
}
