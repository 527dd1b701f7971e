package http

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Collected is one file a collection removed (or, in a dry run, would).
type Collected struct {
	Path string
	Size int64
}

// Collect removes attachment files that were last written before cutoff
// and that referenced does not name (it is given candidate keys and
// returns those some message names), and doomed uploads left behind from
// before cutoff. A send whose append fails leaves its committed files
// unnamed; this is what clears them. With dryRun nothing is removed.
//
// A file whose write time changes between the listing and its removal (the
// same content uploaded again) is kept.
func (s *FileStorage) Collect(ctx context.Context, cutoff time.Time, referenced func(ctx context.Context, keys []string) (map[string]bool, error),
	dryRun bool, report func(Collected),
) error {
	type candidate struct {
		path string
		mod  time.Time
		size int64
	}
	var keys []string
	byKey := map[string]candidate{}
	var doomed []candidate
	err := filepath.WalkDir(s.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == s.Dir {
				return fs.SkipAll // no attachment was ever stored
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.ModTime().Before(cutoff) {
			return nil
		}
		c := candidate{path: path, mod: info.ModTime(), size: info.Size()}
		name := d.Name()
		switch {
		case keyPattern.MatchString(name) && path == s.path(name):
			keys = append(keys, name)
			byKey[name] = c
		case filepath.Dir(path) == filepath.Join(s.Dir, "tmp") && strings.HasPrefix(name, "upload-"):
			doomed = append(doomed, c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	named := map[string]bool{}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		got, err := referenced(ctx, keys[:n])
		if err != nil {
			return err
		}
		for k := range got {
			named[k] = true
		}
		for _, k := range keys[:n] {
			if !named[k] {
				doomed = append(doomed, byKey[k])
			}
		}
		keys = keys[n:]
	}
	for _, c := range doomed {
		if dryRun {
			report(Collected{Path: c.path, Size: c.size})
			continue
		}
		info, err := os.Stat(c.path)
		if err != nil || !info.ModTime().Equal(c.mod) {
			continue // gone, or written again meanwhile
		}
		if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		report(Collected{Path: c.path, Size: c.size})
	}
	return nil
}
