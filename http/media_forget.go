package http

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"
)

// RemoveUnnamed removes the attachment files of keys (a forgotten user's)
// that named does not report as still named by someone else's message. A
// file written at or after since is kept: the same content was uploaded
// again meanwhile (files are named by their content), and its message may
// not be projected yet. It returns the number of files removed.
func (s *FileStorage) RemoveUnnamed(ctx context.Context, keys []string, named func(ctx context.Context, keys []string) (map[string]bool, error),
	since time.Time,
) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	keep, err := named(ctx, keys)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, k := range keys {
		if keep[k] || !keyPattern.MatchString(k) {
			continue
		}
		p := s.path(k)
		info, err := os.Stat(p)
		if err != nil || !info.ModTime().Before(since) {
			continue // gone already, or written again
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
