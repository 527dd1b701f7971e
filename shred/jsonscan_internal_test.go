package shred

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// members agrees with encoding/json on the payloads it accepts.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "a" : 1 , "b":"x\"y\\\\" ,"c":{"d":[1,{"e":"}"}]},"f":null,"g":true,"h":-1.5e3 } `,
		`{"text":{"sealed":"v1:abc="},"sender_id":7}`, `{"a":"\\"}`, `[1]`, `{"a":}`, `{"a\"b":1}`, `{"a":1,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := members(data)
		if !utf8.Valid(data) {
			return // encoding/json replaces invalid bytes in names
		}
		var want map[string]json.RawMessage
		if json.Unmarshal(data, &want) != nil {
			return // invalid JSON: members may say anything but must not panic
		}
		if !ok {
			return // it declines some valid payloads (escaped names): the caller leaves them alone
		}
		if len(m) != len(want) {
			t.Fatalf("members(%s) found %d; encoding/json %d", data, len(m), len(want))
		}
		for name, at := range m {
			var got, exp bytes.Buffer
			_ = json.Compact(&got, data[at.start:at.end])
			_ = json.Compact(&exp, want[name])
			if got.String() != exp.String() {
				t.Fatalf("members(%s)[%q] = %s; want %s", data, name, got.String(), exp.String())
			}
		}
	})
}

func TestSplice(t *testing.T) {
	data := []byte(`{"a":"x","b":1,"c":"yy"}`)
	m, _ := members(data)
	got := splice(data, []edit{{at: m["c"], value: []byte(`null`)}, {at: m["a"], value: []byte(`{"sealed":"v1:z"}`)}})
	if want := `{"a":{"sealed":"v1:z"},"b":1,"c":null}`; string(got) != want {
		t.Errorf("splice = %s; want %s", got, want)
	}
}
