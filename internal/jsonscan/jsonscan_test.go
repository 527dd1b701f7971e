package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// members locates the values of the top-level members of a JSON object
// with Each, a member named twice at its last value, as encoding/json reads
// it.
func members(data []byte) (map[string]Span, bool) {
	out := make(map[string]Span, 8)
	ok := Each(data, func(name []byte, at Span) bool {
		out[string(name)] = at
		return true
	})
	if !ok {
		return nil, false
	}
	return out, true
}

// Each, through members, agrees with encoding/json on the payloads it
// accepts.
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
			return // invalid JSON: Each may say anything but must not panic
		}
		if !ok {
			return // it declines some valid payloads (escaped names): the caller leaves them alone
		}
		if len(m) != len(want) {
			t.Fatalf("members(%s) found %d; encoding/json %d", data, len(m), len(want))
		}
		for name, at := range m {
			var got, exp bytes.Buffer
			_ = json.Compact(&got, data[at.Start:at.End])
			_ = json.Compact(&exp, want[name])
			if got.String() != exp.String() {
				t.Fatalf("members(%s)[%q] = %s; want %s", data, name, got.String(), exp.String())
			}
		}
	})
}

func TestMembersRefusesWhatFollowsTheObject(t *testing.T) {
	for _, in := range []string{`{"a":1} x`, `{} {}`, `{"a":1}}`} {
		if _, ok := members([]byte(in)); ok {
			t.Errorf("members(%q) accepted it", in)
		}
	}
	if m, ok := members([]byte(" {\"a\":1} \n")); !ok || len(m) != 1 {
		t.Errorf("members with spaces around: %v, %v", m, ok)
	}
}

func TestEachStopsWhereTheCallerDeclines(t *testing.T) {
	in := []byte(`{"a":"x","b":2,"a":3}`)
	if m, ok := members(in); !ok || string(in[m["a"].Start:m["a"].End]) != "3" {
		t.Errorf("members(%s) = %v, %v; want a at its last value", in, m, ok)
	}
	var names []string
	ok := Each(in, func(name []byte, _ Span) bool {
		names = append(names, string(name))
		return len(names) < 3
	})
	if ok || strings.Join(names, ",") != "a,b,a" {
		t.Errorf("Each(%s) = %v after %v; want false after a,b,a", in, ok, names)
	}
	if !Each([]byte(`{"a":1,"b":2}`), func([]byte, Span) bool { return true }) {
		t.Error("Each refused an object its callback accepted")
	}
	if Each([]byte(`{"a":1} x`), func([]byte, Span) bool { return true }) {
		t.Error("Each accepted what follows the object")
	}
}

// PlainString and Integer read only what encoding/json reads the same way.
func TestPlainStringAndInteger(t *testing.T) {
	for in, want := range map[string]bool{
		`"abc"`: true, `""`: true, `"a\"b"`: false, `"caf` + "\xc3\xa9" + `"`: false, "\"a\xffb\"": false,
		`"a` + "\t" + `b"`: false, `abc`: false, `"`: false, `"a`: false,
	} {
		if _, ok := PlainString([]byte(in)); ok != want {
			t.Errorf("PlainString(%q) ok = %v; want %v", in, ok, want)
		}
	}
	for in, want := range map[string]bool{
		`0`: true, `-7`: true, `9223372036854775807`: true, `9223372036854775808`: false,
		`01`: false, `+1`: false, `-`: false, `1e3`: false, `1.0`: false, ``: false,
	} {
		if _, ok := Integer([]byte(in)); ok != want {
			t.Errorf("Integer(%q) ok = %v; want %v", in, ok, want)
		}
	}
}
