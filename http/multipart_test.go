package http

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"testing"
)

// A form that breaks off inside a file part is the client's fault (400);
// a failure of where the file goes is the server's, and stays as it is.
func TestSendFormBrokenOffInAFile(t *testing.T) {
	const truncated = "--XX\r\nContent-Disposition: form-data; name=\"conversation_id\"\r\n\r\n1\r\n" +
		"--XX\r\nContent-Disposition: form-data; name=\"attachment_picture\"; filename=\"a.png\"\r\n\r\n\x89PNG"
	lim := formLimits{maxParts: 5, maxField: 16, maxText: 64}
	member := func(int64) error { return nil }

	_, err := readSendForm(multipart.NewReader(bytes.NewReader([]byte(truncated)), "XX"), lim, member,
		func(_ string, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
	if status, body := errorResponse(err); status != 400 {
		t.Fatalf("truncated file part: %d %v (%v); want 400", status, body, err)
	}

	diskFull := errors.New("no space left on device")
	complete := truncated + "\r\n--XX--\r\n"
	_, err = readSendForm(multipart.NewReader(bytes.NewReader([]byte(complete)), "XX"), lim, member,
		func(_ string, r io.Reader) error {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			return diskFull
		})
	if !errors.Is(err, diskFull) {
		t.Fatalf("a failing destination: %v; want it passed on", err)
	}
}
