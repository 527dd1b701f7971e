package embeddedpg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// binaries holds the paths of the server programs, all from one folder.
type binaries struct {
	initdb, pgCtl, postgres string
}

// findBinaries looks for the server programs in binDir if set, else in the
// folder of postgres on PATH, then pg_config --bindir, then the highest
// version in /usr/lib/postgresql/*/bin.
func findBinaries(ctx context.Context, binDir string) (binaries, error) {
	dirs := []string{binDir}
	if binDir == "" {
		dirs = candidateBinDirs(ctx)
	}
	for _, dir := range dirs {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return binaries{}, err
	}
	return binaries{}, fmt.Errorf("%w (searched: %s)", ErrBinariesNotFound, strings.Join(dirs, ", "))
}

func candidateBinDirs(ctx context.Context) []string {
	var dirs []string
	add := func(dir string) {
		if dir == "" {
			return
		}
		for _, d := range dirs {
			if d == dir {
				return
			}
		}
		dirs = append(dirs, dir)
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			add(filepath.Dir(real))
		}
		add(filepath.Dir(p))
	}
	// pg_config may come from the client packages only, so its bindir is
	// a candidate, not an answer: binariesIn checks it.
	if p, err := exec.LookPath("pg_config"); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(cctx, p, "--bindir").Output()
		cancel()
		if err == nil {
			add(strings.TrimSpace(string(out)))
		}
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sortByVersionDesc(versioned)
	for _, d := range versioned {
		add(d)
	}
	return dirs
}

// sortByVersionDesc sorts /usr/lib/postgresql/VERSION/bin paths, highest
// version first ("16" > "15" > "9.6").
func sortByVersionDesc(dirs []string) {
	version := func(dir string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				n = -1
			}
			v = append(v, n)
		}
		return v
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		a, b := version(dirs[i]), version(dirs[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		return len(a) > len(b)
	})
}

func binariesIn(dir string) (binaries, bool) {
	b := binaries{
		initdb:   filepath.Join(dir, "initdb"),
		pgCtl:    filepath.Join(dir, "pg_ctl"),
		postgres: filepath.Join(dir, "postgres"),
	}
	for _, p := range []string{b.initdb, b.pgCtl, b.postgres} {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return binaries{}, false
		}
	}
	return b, true
}
