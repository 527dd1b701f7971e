package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
)

// Storage keeps attachment files by content key. FileStorage keeps them on
// disk; an object store can take its place behind this interface.
type Storage interface {
	// Stage streams r into a staging area, failing with errTooLarge past
	// limit bytes. Nothing is visible until the staged file is committed.
	Stage(ctx context.Context, r io.Reader, limit int64) (*Staged, error)
	// Open returns a stored file. os.ErrNotExist when there is none.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, time.Time, error)
}

// Staged is an uploaded file not yet committed.
type Staged struct {
	Key  string // hex SHA-256 of the content
	Size int64
	Head []byte // the first bytes, for sniffing
	// Commit makes the file visible under Key; Discard drops it.
	Commit  func() error
	Discard func() error
}

// FileStorage stores files under a folder, named by content hash, so equal
// uploads are stored once.
type FileStorage struct {
	Dir string
}

var _ Storage = (*FileStorage)(nil)

var keyPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (fs *FileStorage) path(key string) string {
	return filepath.Join(fs.Dir, key[:2], key[2:4], key)
}

// Stage implements Storage.
func (fs *FileStorage) Stage(ctx context.Context, r io.Reader, limit int64) (*Staged, error) {
	tmpDir := filepath.Join(fs.Dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return nil, fmt.Errorf("stage upload: %w", err)
	}
	f, err := os.CreateTemp(tmpDir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("stage upload: %w", err)
	}
	discard := func() error { return os.Remove(f.Name()) }
	h := sha256.New()
	head := &headBuffer{limit: 512}
	n, err := io.Copy(io.MultiWriter(f, h, head), io.LimitReader(r, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = errTooLarge
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = discard()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, err
	}
	key := hex.EncodeToString(h.Sum(nil))
	return &Staged{
		Key: key, Size: n, Head: head.Bytes(), Discard: discard,
		Commit: func() error {
			dst := fs.path(key)
			if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
				return err
			}
			return os.Rename(f.Name(), dst) // same content, same name: replacing is harmless
		},
	}, nil
}

// Open implements Storage.
func (fs *FileStorage) Open(_ context.Context, key string) (io.ReadSeekCloser, time.Time, error) {
	if !keyPattern.MatchString(key) {
		return nil, time.Time{}, os.ErrNotExist
	}
	f, err := os.Open(fs.path(key))
	if err != nil {
		return nil, time.Time{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, time.Time{}, err
	}
	return f, st.ModTime(), nil
}

type headBuffer struct {
	bytes.Buffer
	limit int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// sniffPicture returns the type of a JPEG, PNG, GIF or WebP file, or "".
func sniffPicture(head []byte) string {
	switch ct := http.DetectContentType(head); ct {
	case "image/jpeg", "image/png", "image/gif", "image/webp":
		return ct
	}
	return ""
}

// sniffVideo returns the type of an MP4, WebM or QuickTime file, or "".
// ISO media files must name a video brand: HEIF and AVIF pictures and M4A
// audio share the container and are refused. A QuickTime file without an
// ftyp box is accepted only when its first atoms are well formed.
func sniffVideo(head []byte) string {
	if len(head) >= 16 && string(head[4:8]) == "ftyp" {
		size := binary.BigEndian.Uint32(head[0:4])
		if size < 16 || size > 4096 {
			return ""
		}
		switch brand := string(head[8:12]); {
		case brand == "qt  ":
			return "video/quicktime"
		case mp4Brands[brand]:
			return "video/mp4"
		}
		return ""
	}
	if quickTimeAtoms(head) {
		return "video/quicktime"
	}
	if bytes.HasPrefix(head, []byte{0x1A, 0x45, 0xDF, 0xA3}) && http.DetectContentType(head) == "video/webm" {
		return "video/webm"
	}
	return ""
}

// mp4Brands are the major brands of ISO base media files that hold video.
var mp4Brands = map[string]bool{
	"isom": true, "iso2": true, "iso4": true, "iso5": true, "iso6": true,
	"mp41": true, "mp42": true, "avc1": true, "M4V ": true, "mmp4": true, "dash": true,
}

// quickTimeAtoms reports whether head starts like a QuickTime movie without
// an ftyp box: a movie atom opening with its header, or a padding atom of
// a plausible size followed by another top-level atom.
func quickTimeAtoms(head []byte) bool {
	if len(head) < 16 {
		return false
	}
	size := int(binary.BigEndian.Uint32(head[0:4]))
	switch string(head[4:8]) {
	case "moov":
		return size >= 16 && (string(head[12:16]) == "mvhd" || string(head[12:16]) == "cmov")
	case "wide", "free", "skip", "pnot":
		if size < 8 || size+8 > len(head) {
			return false
		}
		switch string(head[size+4 : size+8]) {
		case "moov", "mdat", "wide", "free", "skip", "pnot":
			return true
		}
	}
	return false
}

var errUnsupportedAttachment = func(field, kinds string) error {
	return &domain.Error{Kind: domain.KindUnsupported, Message: fmt.Sprintf("Unsupported %s: expected %s.", field, kinds)}
}

// serveMedia serves an attachment to members of a conversation it was sent to.
func (s *Server) serveMedia(c echo.Context) error {
	key := c.Param("key")
	if !keyPattern.MatchString(key) {
		return echo.ErrNotFound
	}
	ctx := c.Request().Context()
	exists, ct, err := s.rm.AttachmentAccess(ctx, key, caller(c).UserID)
	if err != nil {
		return err
	}
	if !exists {
		return echo.ErrNotFound
	}
	if ct == "" {
		return domain.Errorf(domain.KindForbidden, "You do not have permission to access this file.")
	}
	f, mod, err := s.media.Open(ctx, key)
	if errors.Is(err, os.ErrNotExist) {
		return echo.ErrNotFound
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(c.Response(), c.Request(), "", mod, f)
	return nil
}
