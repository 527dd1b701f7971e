package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

// The fuzz targets run their seeds in every `go test`; `make fuzz` runs
// each for a few seconds. Their properties: no input panics, every refusal
// is a classified error in the API's shapes (a field error or a detail,
// never a 500), and accepted values survive a round trip.

// wantClientError fails unless err is a classified client error.
func wantClientError(t *testing.T, input any, err error) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("%q: error %v (%T) is not a domain error", input, err, err)
	}
	switch de.Kind {
	case domain.KindInvalid, domain.KindUnsupported, domain.KindTooLarge:
	default:
		t.Fatalf("%q: error kind %v; want invalid, unsupported or too large", input, de.Kind)
	}
	status, body := errorResponse(err)
	if status >= 500 {
		t.Fatalf("%q: answered %d %v", input, status, body)
	}
	if fields, ok := body.(map[string][]string); ok {
		for f, msgs := range fields {
			if f == "" || len(msgs) == 0 {
				t.Fatalf("%q: field error %v has an empty field or no message", input, fields)
			}
		}
	}
}

func jsonContext(raw []byte, ct string) echo.Context {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(raw))
	if ct != "" {
		req.Header.Set(echo.HeaderContentType, ct)
	}
	return echo.New().NewContext(req, httptest.NewRecorder())
}

// FuzzJSONBodies runs the JSON body decoder and every field reader the
// handlers use (register, login, refresh, create and join room, send, read).
func FuzzJSONBodies(f *testing.F) {
	for _, s := range []string{
		`{"username": "ann", "password": "correct-horse-1"}`, `{"refresh": "x"}`,
		`{"name": "Room", "description": null, "type": "group", "members": [1, "2"]}`,
		`{"chatroom_id": 1}`, `{"conversation": "7"}`, `{"conversation_id": 1, "text": "hi", "client_id": "k"}`,
		`{"conversation_id": 1, "message_ids": [1, 2, 3]}`, `[]`, `null`, `"x"`, `{"a":`, ``, ` `,
		`{"conversation_id": 9223372036854775808}`, `{"conversation_id": -1}`, `{"conversation_id": 1.5}`,
		`{"message_ids": {"a": 1}}`, `{"username": "", "password": "   "}`, `{"text": "\u0000"}`, `{"username": 5}`,
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{"a": 1}`), "application/jsonx")
	f.Add([]byte(`{"a": 1}`), "text/plain")
	f.Fuzz(func(t *testing.T, raw []byte, ct string) {
		b, err := readJSON(jsonContext(raw, ct))
		if err != nil {
			wantClientError(t, raw, err)
			return
		}
		if _, err := b.requiredStrings("username", "password"); err != nil {
			wantClientError(t, raw, err)
		}
		for _, f := range []string{"name", "description", "type", "text", "client_id", "refresh"} {
			s, err := b.str(f)
			if err != nil {
				wantClientError(t, raw, err)
				continue
			}
			if s != nil {
				// An accepted string reads back the same from its JSON.
				again, err := body{f: mustJSON(t, *s)}.str(f)
				if err != nil || again == nil || *again != *s {
					t.Fatalf("%q: %s = %q does not round-trip (%v)", raw, f, *s, err)
				}
			}
		}
		for _, names := range [][]string{{"conversation_id", "conversation"}, {"chatroom_id", "conversation", "conversation_id"}} {
			field := b.first(names...)
			id, err := b.id(field)
			if err != nil {
				wantClientError(t, raw, err)
				continue
			}
			if again, err := (body{field: mustJSON(t, id)}).id(field); err != nil || again != id {
				t.Fatalf("%q: %s = %d does not round-trip (%v)", raw, field, id, err)
			}
		}
		for _, f := range []string{"members", "message_ids"} {
			ids, present, err := b.ids(f)
			if err != nil {
				wantClientError(t, raw, err)
				continue
			}
			if present {
				again, _, err := body{f: mustJSON(t, ids)}.ids(f)
				if err != nil || fmt.Sprint(again) != fmt.Sprint(ids) {
					t.Fatalf("%q: %s = %v does not round-trip (%v)", raw, f, ids, err)
				}
			}
		}
	})
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzSendForm reads arbitrary bytes as a multipart send-message form.
func FuzzSendForm(f *testing.F) {
	const boundary = "XX"
	form := func(parts ...string) []byte {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		_ = w.SetBoundary(boundary)
		for i := 0; i+1 < len(parts); i += 2 {
			if strings.HasPrefix(parts[i], "file:") {
				fw, _ := w.CreateFormFile(strings.TrimPrefix(parts[i], "file:"), "f.png")
				_, _ = fw.Write([]byte(parts[i+1]))
				continue
			}
			_ = w.WriteField(parts[i], parts[i+1])
		}
		_ = w.Close()
		return buf.Bytes()
	}
	f.Add(form("conversation_id", "1", "text", "hello"))
	f.Add(form("conversation_id", "1", "file:attachment_picture", "\x89PNG\r\n\x1a\n"))
	f.Add(form("file:attachment_video", "data", "conversation_id", "1"))
	f.Add(form("conversation_id", "0", "file:attachment_picture", "x"))
	f.Add(form("conversation", "-7", "file:attachment_video", "x", "file:attachment_picture", "y"))
	f.Add(form("conversation", "x", "text", strings.Repeat("t", 100)))
	f.Add(form("a", "", "b", "", "c", "", "d", "", "e", "", "f", ""))
	f.Add([]byte("--XX\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nunterminated"))
	f.Add([]byte("garbage"))
	lim := formLimits{maxParts: 5, maxField: 16, maxText: 64}
	// The membership check stands in for the server's: ids that name no
	// room the caller is in (here: any id below 1) are refused.
	errNotMember := errors.New("not a member")
	f.Fuzz(func(t *testing.T, raw []byte) {
		files, checks := 0, 0
		fields, err := readSendForm(multipart.NewReader(bytes.NewReader(raw), boundary), lim,
			func(conversation int64) error {
				checks++
				if checks > 1 {
					t.Fatal("the membership check ran twice for one form")
				}
				if conversation < 1 {
					return errNotMember
				}
				return nil
			},
			func(name string, part io.Reader) error {
				if checks == 0 {
					t.Fatalf("file part %q read before the membership check", name)
				}
				if !isAttachmentField(name) {
					t.Fatalf("file part named %q", name)
				}
				files++
				_, err := io.Copy(io.Discard, io.LimitReader(part, 1<<20))
				return err
			})
		if errors.Is(err, errNotMember) {
			if files > 0 {
				t.Fatalf("%d file parts read, then the membership check refused the form", files)
			}
			return
		}
		if err != nil {
			wantClientError(t, raw, err)
			return
		}
		if len(fields)+files > lim.maxParts {
			t.Fatalf("%d fields and %d files accepted; at most %d parts", len(fields), files, lim.maxParts)
		}
		for name, v := range fields {
			max := lim.maxField
			if name == "text" {
				max = lim.maxText
			}
			if int64(len(v)) > max {
				t.Fatalf("field %q of %d bytes accepted; bound %d", name, len(v), max)
			}
		}
	})
}

// FuzzPage reads arbitrary list query strings.
func FuzzPage(f *testing.F) {
	for _, q := range []string{"", "limit=10", "limit=0", "limit=-1", "limit=500", "before=5", "before=0", "after=0",
		"after=9223372036854775807", "before=9223372036854775807&limit=1", "after=1&before=2", "limit=abc", "after=1.5",
		"limit=99999999999999999999", "after=&limit=", "before=1&before=2"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/list-messages/", nil), httptest.NewRecorder())
		c.Request().URL.RawQuery = query
		p, err := page(c)
		if err != nil {
			wantClientError(t, query, err)
			return
		}
		if p.Limit < 1 || p.Limit > maxPageLimit || p.Before < 0 || p.After < 0 || p.Before > 0 && p.Forward {
			t.Fatalf("%q: accepted %+v", query, p)
		}
		// The page's own query string, as a Link header writes it, reads
		// back as the same page.
		again := pageQuery(p)
		c.Request().URL.RawQuery = again
		back, err := page(c)
		if err != nil || back != p {
			t.Fatalf("%q: %+v written as %q reads as %+v, %v", query, p, again, back, err)
		}
	})
}

// pageQuery writes a page as linkHeader does.
func pageQuery(p readmodel.Page) string {
	v := url.Values{"limit": {strconv.Itoa(p.Limit)}}
	switch {
	case p.Before > 0:
		v.Set("before", strconv.FormatInt(p.Before, 10))
	case p.After > 0 || p.Forward:
		v.Set("after", strconv.FormatInt(p.After, 10))
	}
	return v.Encode()
}
