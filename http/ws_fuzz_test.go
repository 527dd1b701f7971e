package http

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeFrame: any bytes a client sends decode into a frame or an
// error frame's detail, never a panic; an error names a field or says
// what a frame must be; a decoded frame's fields survive a round trip.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"message","text":"hi","client_id":"k1"}`,
		`{"type":"message","text":"hi","conversation":7}`,
		`{"type":"read","message_ids":[1,2,3]}`,
		`{"type":"typing","is_typing":false}`,
		`{"type":"auth","token":"x.y.z"}`,
		`{"type":5}`, `{"is_typing":"yes"}`, `[]`, `null`, `"message"`, `{`, "\xff", ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		in, detail := decodeFrame(msg)
		if detail != "" {
			if in.Type != "" || in.Text != nil || in.Conversation != nil || in.MessageIDs != nil || in.Token != nil {
				t.Fatalf("a refused frame carries %+v", in)
			}
			if !strings.HasSuffix(detail, ".") || (detail != "Frames must be JSON objects." && !strings.Contains(detail, ": Not a valid ")) {
				t.Fatalf("detail %q is neither a field error nor the shape error", detail)
			}
			return
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		again, d := decodeFrame(b)
		if d != "" || again.Type != in.Type || again.ClientID != in.ClientID ||
			(again.Text == nil) != (in.Text == nil) || (in.Text != nil && *again.Text != *in.Text) {
			t.Fatalf("round trip of %+v gave %+v (%q)", in, again, d)
		}
	})
}
