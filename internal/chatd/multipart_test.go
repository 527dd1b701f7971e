package chatd_test

// Multipart send-message forms are read part by part under bounds, and a
// stranger's file is refused before it is read.

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evchat/evchat/internal/chatd"
)

func TestMultipartBounds(t *testing.T) {
	t.Parallel()
	var cfg chatd.Config
	s := startServer(t, capture(&cfg), func(c *chatd.Config) { c.MaxFormParts, c.MaxFormField = 8, 64 })
	a, b, stranger := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)

	noMessages := func(t *testing.T) {
		t.Helper()
		if got, _ := s.conversationMessages(t, a, room, ""); len(got) != 0 {
			t.Fatalf("%d messages stored; want none", len(got))
		}
	}

	t.Run("too many parts", func(t *testing.T) {
		parts := []formPart{{name: "conversation_id", value: fmt.Sprint(room)}, {name: "text", value: "hi"}}
		for i := range 100 {
			parts = append(parts, formPart{name: fmt.Sprintf("f%d", i)})
		}
		r := s.callMultipart(t, "/send-message/", a, parts)
		wantFields(t, r, map[string][]string{"non_field_errors": {"A form may have at most 8 parts."}})
		noMessages(t)
	})

	t.Run("a field over its bound", func(t *testing.T) {
		r := s.callMultipart(t, "/send-message/", a, []formPart{
			{name: "conversation_id", value: fmt.Sprint(room)}, {name: "text", value: "hi"},
			{name: "client_id", value: strings.Repeat("k", 65)},
		})
		wantFields(t, r, map[string][]string{"client_id": {"Ensure this field has no more than 64 bytes."}})
		r = s.callMultipart(t, "/send-message/", a, []formPart{
			{name: "conversation_id", value: fmt.Sprint(room)}, {name: "junk", value: strings.Repeat("j", 1000)},
		})
		wantFields(t, r, map[string][]string{"non_field_errors": {"Ensure this field has no more than 64 bytes."}})
		noMessages(t)
	})

	t.Run("a file before the conversation", func(t *testing.T) {
		r := s.callMultipart(t, "/send-message/", a, []formPart{
			{name: "attachment_picture", file: "p.png", value: string(pngBytes(t, 3))},
			{name: "conversation_id", value: fmt.Sprint(room)},
		})
		wantFields(t, r, map[string][]string{"conversation_id": {"Send conversation_id before the attachments."}})
		noMessages(t)
	})

	t.Run("a stranger's file is refused before it is read", func(t *testing.T) {
		// The file part never ends: the answer can only come before the
		// server reads it. A declared length far over what is sent makes
		// the server close the connection instead of draining the body.
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		mw := multipart.NewWriter(pw)
		go func() {
			_ = mw.WriteField("conversation_id", fmt.Sprint(room))
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="attachment_video"; filename="v.mp4"`)
			fw, err := mw.CreatePart(h)
			if err == nil {
				_, _ = fw.Write(bytes.Repeat([]byte{0}, 4096))
			}
			// Block here until the test ends: the rest of the file never comes.
		}()
		req, err := http.NewRequest("POST", s.base+"/send-message/", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 50 << 20
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+stranger.Access)
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d %s; want 403", resp.StatusCode, body)
		}
		tmp, _ := os.ReadDir(filepath.Join(cfg.DataDir, "media", "tmp"))
		if len(tmp) != 0 {
			t.Fatalf("%d staged files; want none", len(tmp))
		}
		noMessages(t)
	})

	t.Run("a member's form within the bounds", func(t *testing.T) {
		m := s.sendMultipart(t, a, room, "with a picture", []formPart{{name: "attachment_picture", file: "p.png", value: string(pngBytes(t, 4))}})
		if m.AttachmentPicture == nil || m.Text != "with a picture" {
			t.Fatalf("sent %+v; want the text and a picture", m)
		}
	})
}
