package chatd_test

// Attachments: multipart send-message and the members-only /media/ URLs.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/evchat/evchat/internal/chatd"
)

// formPart is one part of a multipart form: a field, or a file when file
// (its file name) is set.
type formPart struct {
	name, value string
	file        string
	contentType string // of a file part; default application/octet-stream
}

func multipartBody(t testing.TB, parts []formPart) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p.file == "" {
			if err := w.WriteField(p.name, p.value); err != nil {
				t.Fatal(err)
			}
			continue
		}
		ct := p.contentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.file))
		h.Set("Content-Type", ct)
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pw.Write([]byte(p.value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

// callMultipart posts a multipart form to path as u.
func (s *testServer) callMultipart(t testing.TB, path string, u user, parts []formPart, headers ...string) response {
	t.Helper()
	body, ct := multipartBody(t, parts)
	headers = append(headers, "Content-Type", ct)
	if u.Access != "" {
		headers = append(headers, "Authorization", "Bearer "+u.Access)
	}
	return s.call(t, "POST", path, bytes.NewReader(body), headers...)
}

// sendMultipart sends a multipart message (conversation_id and, when not
// empty, text, then parts) and decodes the 201 answer.
func (s *testServer) sendMultipart(t testing.TB, u user, room int64, text string, parts []formPart) messageJSON {
	t.Helper()
	all := []formPart{{name: "conversation_id", value: fmt.Sprint(room)}}
	if text != "" {
		all = append(all, formPart{name: "text", value: text})
	}
	r := s.callMultipart(t, "/send-message/", u, append(all, parts...))
	wantStatus(t, r, http.StatusCreated)
	return decodeMessage(t, r.Body)
}

var mediaPathRE = regexp.MustCompile(`^/media/[0-9a-f]{64}/$`)

// mediaPath checks that an attachment URL is an absolute URL on this server
// and returns its path.
func mediaPath(t testing.TB, s *testServer, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || "http://"+u.Host != s.base || !mediaPathRE.MatchString(u.Path) {
		t.Fatalf("attachment URL %q is not %s/media/<sha256>/", raw, s.base)
	}
	return u.Path
}

// pngBytes encodes an n×n PNG (n makes the content, hence the key, unique).
func pngBytes(t testing.TB, n int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for i := range n {
		img.Set(i, i, color.NRGBA{R: uint8(i * 7), G: 200, B: 10, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 9))
	for x := range 16 {
		img.Set(x, x%9, color.RGBA{R: 255, A: 255})
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gifBytes(t testing.TB) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, 5, 5), color.Palette{color.Black, color.White})
	img.SetColorIndex(2, 2, 1)
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// webpBytes is a RIFF/WEBP header with a VP8L chunk: enough to sniff.
func webpBytes() []byte {
	chunk := []byte("VP8L\x05\x00\x00\x00\x2f\x00\x00\x00\x00\x00")
	b := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(chunk)))...)
	return append(append(b, "WEBP"...), chunk...)
}

// isoBox is an ISO base media file box (MP4 and QuickTime are made of them).
func isoBox(typ string, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(payload)))
	return append(append(b, typ...), payload...)
}

// videoBytes is an ftyp box of the given major brand and an mdat box.
func videoBytes(brand string, compatible ...string) []byte {
	ftyp := []byte(brand + "\x00\x00\x02\x00")
	for _, c := range compatible {
		ftyp = append(ftyp, c...)
	}
	return append(isoBox("ftyp", ftyp), isoBox("mdat", []byte("not really a frame"))...)
}

// webmBytes starts with an EBML header whose DocType is webm.
func webmBytes() []byte {
	return []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x02\x42\x85\x81\x02")
}

// storedFiles counts the committed media files under a data folder.
func storedFiles(t testing.TB, dataDir string) int {
	t.Helper()
	n := 0
	root := filepath.Join(dataDir, "media")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() && d.Name() == "tmp" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAttachments sends every accepted picture and video type, fetches each
// back as members, strangers and anonymous callers, and checks the
// rejections (415, 413, 403, 404) store nothing.
func TestAttachments(t *testing.T) {
	t.Parallel()
	var cfg chatd.Config
	const limit = 64 << 10
	s := startServer(t, func(c *chatd.Config) { c.MaxPicture, c.MaxVideo = limit, limit }, capture(&cfg))
	a, b, stranger := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)

	accepted := []struct {
		name, field, file string
		data              []byte
		wantType          string
	}{
		{"png", "attachment_picture", "a.png", pngBytes(t, 8), "image/png"},
		{"jpeg", "attachment_picture", "a.jpg", jpegBytes(t), "image/jpeg"},
		{"gif", "attachment_picture", "a.gif", gifBytes(t), "image/gif"},
		{"webp", "attachment_picture", "a.webp", webpBytes(), "image/webp"},
		{"mp4", "attachment_video", "a.mp4", videoBytes("isom", "isom", "mp41"), "video/mp4"},
		{"quicktime", "attachment_video", "a.mov", videoBytes("qt  ", "qt  "), "video/quicktime"},
		{"webm", "attachment_video", "a.webm", webmBytes(), "video/webm"},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			m := s.sendMultipart(t, a, room, "look: "+tt.name, []formPart{{name: tt.field, file: tt.file, value: string(tt.data)}})
			got, other := m.AttachmentPicture, m.AttachmentVideo
			if tt.field == "attachment_video" {
				got, other = other, got
			}
			if got == nil || other != nil || m.Text != "look: "+tt.name || m.Sender != a.ID {
				t.Fatalf("message = %+v; want only %s set", m, tt.field)
			}
			path := mediaPath(t, s, *got)

			for _, u := range []user{a, b} {
				r := s.callJSON(t, "GET", path, u.Access, nil)
				wantStatus(t, r, http.StatusOK)
				if ct := r.Header.Get("Content-Type"); ct != tt.wantType {
					t.Fatalf("Content-Type = %q; want %q", ct, tt.wantType)
				}
				if !bytes.Equal(r.Body, tt.data) {
					t.Fatalf("served %d bytes; want the %d bytes sent", len(r.Body), len(tt.data))
				}
			}
			r := s.callJSON(t, "HEAD", path, b.Access, nil)
			if r.Status != http.StatusOK || r.Header.Get("Content-Length") != fmt.Sprint(len(tt.data)) || len(r.Body) != 0 {
				t.Fatalf("HEAD = %d, Content-Length %q, %d body bytes; want 200, %d, none", r.Status, r.Header.Get("Content-Length"), len(r.Body), len(tt.data))
			}
			wantDetail(t, s.callJSON(t, "GET", path, stranger.Access, nil), http.StatusForbidden, "")
			wantUnauthorized(t, s.callJSON(t, "GET", path, "", nil))

			// The list shows the same URL.
			listed := firstOf(s.conversationMessages(t, b, room, ""))
			if last := listed[len(listed)-1]; last.ID != m.ID || !equalPtr(last.AttachmentPicture, m.AttachmentPicture) ||
				!equalPtr(last.AttachmentVideo, m.AttachmentVideo) {
				t.Fatalf("listed %+v; want %+v", last, m)
			}
		})
	}

	t.Run("picture and video, no text, conversation alias", func(t *testing.T) {
		pic, vid := pngBytes(t, 9), videoBytes("mp42", "mp42")
		r := s.callMultipart(t, "/send-message/", b, []formPart{
			{name: "conversation", value: fmt.Sprint(room)},
			{name: "attachment_picture", file: "p.png", value: string(pic), contentType: "image/png"},
			{name: "attachment_video", file: "v.mp4", value: string(vid), contentType: "video/mp4"},
		})
		wantStatus(t, r, http.StatusCreated)
		m := decodeMessage(t, r.Body)
		if m.AttachmentPicture == nil || m.AttachmentVideo == nil || m.Text != "" || m.Conversation != room {
			t.Fatalf("message = %+v; want both attachments, no text, room %d", m, room)
		}
		for _, want := range []struct {
			url  string
			data []byte
		}{{*m.AttachmentPicture, pic}, {*m.AttachmentVideo, vid}} {
			if r := s.callJSON(t, "GET", mediaPath(t, s, want.url), a.Access, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, want.data) {
				t.Fatalf("GET %s = %d with %d bytes; want 200 with the %d bytes sent", want.url, r.Status, len(r.Body), len(want.data))
			}
		}
	})

	t.Run("rejected uploads store nothing", func(t *testing.T) {
		files := storedFiles(t, cfg.DataDir)
		before := len(firstOf(s.conversationMessages(t, a, room, "")))
		over := append(pngBytes(t, 10), bytes.Repeat([]byte{0}, limit)...)
		tests := []struct {
			name   string
			as     user
			parts  []formPart
			status int
			field  string // a 400 field error instead of a detail
		}{
			{"text as a picture", a, []formPart{{name: "attachment_picture", file: "x.png", value: "just some text, honest", contentType: "image/png"}}, http.StatusUnsupportedMediaType, ""},
			{"png as a video", a, []formPart{{name: "attachment_video", file: "x.mp4", value: string(pngBytes(t, 11)), contentType: "video/mp4"}}, http.StatusUnsupportedMediaType, ""},
			{"heic picture as a video", a, []formPart{{name: "attachment_video", file: "x.mp4", value: string(videoBytes("heic", "mif1", "heic")), contentType: "video/mp4"}}, http.StatusUnsupportedMediaType, ""},
			{"text that looks like an atom as a video", a, []formPart{{name: "attachment_video", file: "x.mov", value: "abcdfree this is just a text file", contentType: "video/quicktime"}}, http.StatusUnsupportedMediaType, ""},
			{"mp4 as a picture", a, []formPart{{name: "attachment_picture", file: "x.png", value: string(videoBytes("isom"))}}, http.StatusUnsupportedMediaType, ""},
			{"empty file", a, []formPart{{name: "attachment_picture", file: "x.png", value: ""}}, http.StatusUnsupportedMediaType, ""},
			{"picture over the limit", a, []formPart{{name: "attachment_picture", file: "big.png", value: string(over)}}, http.StatusRequestEntityTooLarge, ""},
			{"video over the limit", a, []formPart{{name: "attachment_video", file: "big.mp4", value: string(append(videoBytes("isom"), make([]byte, limit)...))}}, http.StatusRequestEntityTooLarge, ""},
			{"body over the limit", a, []formPart{{name: "text", value: strings.Repeat("t", 2<<20)}}, http.StatusRequestEntityTooLarge, ""},
			{"non-member", stranger, []formPart{{name: "attachment_picture", file: "s.png", value: string(pngBytes(t, 12))}}, http.StatusForbidden, ""},
			{"picture with a text over the limit", a, []formPart{
				{name: "attachment_picture", file: "t.png", value: string(pngBytes(t, 16))},
				{name: "text", value: strings.Repeat("t", 64<<10+1)},
			}, http.StatusBadRequest, "text"},
			{"picture with a NUL in the text", a, []formPart{
				{name: "attachment_picture", file: "n.png", value: string(pngBytes(t, 17))},
				{name: "text", value: "a\x00b"},
			}, http.StatusBadRequest, "text"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				parts := append([]formPart{{name: "conversation_id", value: fmt.Sprint(room)}, {name: "text", value: "nope"}}, tt.parts...)
				r := s.callMultipart(t, "/send-message/", tt.as, parts)
				if tt.field != "" {
					wantFields(t, r, map[string][]string{tt.field: nil})
					return
				}
				wantDetail(t, r, tt.status, "")
			})
		}
		t.Run("missing room", func(t *testing.T) {
			parts := []formPart{{name: "conversation_id", value: "999999"}, {name: "attachment_picture", file: "m.png", value: string(pngBytes(t, 13))}}
			wantDetail(t, s.callMultipart(t, "/send-message/", a, parts), http.StatusNotFound, "")
		})
		t.Run("no token", func(t *testing.T) {
			parts := []formPart{{name: "conversation_id", value: fmt.Sprint(room)}, {name: "attachment_picture", file: "m.png", value: string(pngBytes(t, 14))}}
			wantUnauthorized(t, s.callMultipart(t, "/send-message/", user{}, parts))
		})
		if got := storedFiles(t, cfg.DataDir); got != files {
			t.Fatalf("rejected uploads left %d files; want %d", got, files)
		}
		if got := len(firstOf(s.conversationMessages(t, a, room, ""))); got != before {
			t.Fatalf("rejected uploads stored messages: %d; want %d", got, before)
		}
	})

	t.Run("media errors", func(t *testing.T) {
		unknown := "/media/" + strings.Repeat("ab", 32) + "/"
		wantDetail(t, s.callJSON(t, "GET", unknown, a.Access, nil), http.StatusNotFound, "")
		wantDetail(t, s.callJSON(t, "GET", "/media/not-a-key/", a.Access, nil), http.StatusNotFound, "")
		wantDetail(t, s.callJSON(t, "GET", "/media/../../etc/passwd", a.Access, nil), http.StatusNotFound, "")
		wantUnauthorized(t, s.callJSON(t, "GET", unknown, "", nil))
	})

	t.Run("membership decides access", func(t *testing.T) {
		m := s.sendMultipart(t, a, room, "", []formPart{{name: "attachment_picture", file: "late.png", value: string(pngBytes(t, 15))}})
		path := mediaPath(t, s, *m.AttachmentPicture)
		late := s.with(t).newUser()
		wantDetail(t, s.callJSON(t, "GET", path, late.Access, nil), http.StatusForbidden, "")
		wantStatus(t, s.callJSON(t, "POST", "/join-chatroom/", late.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
		wantStatus(t, s.callJSON(t, "GET", path, late.Access, nil), http.StatusOK)
		wantStatus(t, s.callJSON(t, "DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), late.Access, nil), http.StatusOK)
		wantDetail(t, s.callJSON(t, "GET", path, late.Access, nil), http.StatusForbidden, "")
	})
}
