package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMediaGC: files no message names go once older than the bound; a named
// file, a fresh one and anything in a dry run stay.
func TestMediaGC(t *testing.T) {
	dataDir := t.TempDir()
	m, db := serverIn(t, dataDir)
	base := m.URL()
	post(t, base+"/auth/register/", "", map[string]string{"username": "gc", "password": "password-gc"})
	tok := post(t, base+"/auth/login/", "", map[string]string{"username": "gc", "password": "password-gc"})["access"].(string)
	post(t, base+"/create-chatroom/", tok, map[string]any{"type": "group"})
	media := filepath.Join(dataDir, "media")
	named := sendPicture(t, base, tok, media)

	old := time.Now().Add(-48 * time.Hour)
	place := func(key string, mod time.Time) string {
		p := filepath.Join(media, key[:2], key[2:4], key)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("orphan "+key), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orphan := place(strings.Repeat("a", 64), old)
	fresh := place(strings.Repeat("b", 64), time.Now())
	leftover := filepath.Join(media, "tmp", "upload-123")
	if err := os.MkdirAll(filepath.Dir(leftover), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, []byte("half an upload"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(leftover, old, old); err != nil {
		t.Fatal(err)
	}
	// The named picture is old too: only the read model keeps it.
	if err := os.Chtimes(named, old, old); err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	out, errOut, code := chatctl(t, db, "--data-dir", dataDir, "media", "gc", "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove 2 files") {
		t.Fatalf("dry run: code %d\n%s%s", code, out, errOut)
	}
	if !exists(orphan) || !exists(leftover) {
		t.Fatal("the dry run removed files")
	}
	out, errOut, code = chatctl(t, db, "--data-dir", dataDir, "media", "gc")
	if code != 0 || !strings.Contains(out, "removed 2 files") {
		t.Fatalf("gc: code %d\n%s%s", code, out, errOut)
	}
	for p, want := range map[string]bool{orphan: false, leftover: false, fresh: true, named: true} {
		if exists(p) != want {
			t.Errorf("%s exists = %v; want %v", p, !want, want)
		}
	}
	if _, _, code := chatctl(t, db, "--data-dir", dataDir, "media", "gc", "--older-than", "1s"); code != 2 {
		t.Errorf("--older-than 1s: exit code %d; want 2 (too short)", code)
	}
}

// sendPicture posts a small PNG to room 1 and returns where it is stored
// under media.
func sendPicture(t *testing.T, base, token, media string) string {
	t.Helper()
	var img bytes.Buffer
	if err := png.Encode(&img, image.NewGray(image.Rect(0, 0, 3, 3))); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("conversation_id", "1")
	fw, _ := w.CreateFormFile("attachment_picture", "p.png")
	_, _ = fw.Write(img.Bytes())
	_ = w.Close()
	req, _ := http.NewRequest("POST", base+"/send-message/", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("send picture: %d", resp.StatusCode)
	}
	sum := sha256.Sum256(img.Bytes())
	key := hex.EncodeToString(sum[:])
	p := filepath.Join(media, key[:2], key[2:4], key)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the sent picture is not stored where expected: %v", err)
	}
	return p
}
