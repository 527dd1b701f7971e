package main

import (
	"encoding/json"
	"testing"
)

// readFrame reads what encoding/json reads, escapes and odd numbers
// included (those through encoding/json itself).
func TestReadFrameAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"type":"message","id":42,"conversation":7,"text":"cb 1 2","sender":{"id":3,"username":"u"},"receivers":[1,2]}`,
		` {"text":"a\"b","type":"message","id":1,"conversation":2} `,
		`{"type":"delivered","conversation":2,"user":3,"message_ids":[1,2,3]}`,
		`{"type":"message","id":1e3,"conversation":2,"text":"x"}`,
		`{"type":"message","id":1,"id":5,"conversation":2,"text":"x"}`,
		`{"type":"typ\u0065","id":-4,"conversation":0,"text":""}`,
		`{"type":"message","id":"7"}`,
		`{"type":"message","id":1,}`,
		"{\"type\":\"message\",\"id\":1,\"conversation\":2,\"text\":\"a\xffb\"}", // encoding/json reads U+FFFD
		`{"type":"message","id":1,"conversation":2,"text":"café  "}`,
		`[1,2]`,
		`not json`,
	} {
		got, ok := readFrame([]byte(in))
		var want frame
		wantOK := json.Unmarshal([]byte(in), &want) == nil
		if ok != wantOK || (ok && got != want) {
			t.Errorf("readFrame(%s) = %+v, %v; encoding/json %+v, %v", in, got, ok, want, wantOK)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(`{"type":"message","id":42,"conversation":7,"text":"cb 1 2"}`)
	f.Add(`{"text":"a\"b","type":"m","id":1,"conversation":2}`)
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := readFrame([]byte(in))
		var want frame
		if json.Unmarshal([]byte(in), &want) != nil {
			return // invalid JSON: readFrame may read the members it needs
		}
		if !ok || got != want {
			t.Fatalf("readFrame(%q) = %+v, %v; encoding/json %+v", in, got, ok, want)
		}
	})
}
