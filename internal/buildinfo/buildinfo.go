// Package buildinfo reports what a binary was built from: the module
// version, the VCS commit and its time, as the Go toolchain stamps them.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is what a binary knows of its own build.
type Info struct {
	Version  string // module version, "(devel)" for a build from a checkout
	Commit   string // VCS revision, "unknown" when not stamped
	Time     string // commit time (RFC 3339), "unknown" when not stamped
	Modified bool   // the checkout had uncommitted changes
	Go       string // toolchain version
}

// Read returns the build information of the running binary.
func Read() Info {
	info := Info{Version: "(devel)", Commit: "unknown", Time: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if v := bi.Main.Version; v != "" {
		info.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Line is the one line a -version flag prints, e.g.
// "chatd v1.2.0 commit 3faa5eb (2026-12-05T12:00:00Z) go1.26.8".
func (i Info) Line(program string) string {
	commit := i.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if i.Modified {
		commit += "+modified"
	}
	return fmt.Sprintf("%s %s commit %s (%s) %s", program, i.Version, commit, i.Time, i.Go)
}
