package shred

import "testing"

// Only the one shape of a sealed value is taken for one.
func TestSealedBox(t *testing.T) {
	for _, c := range []struct {
		in   string
		box  string
		want bool
	}{
		{`{"sealed":"v1:abc="}`, "v1:abc=", true},
		{` { "sealed" : "v1:abc=" } `, "v1:abc=", true}, // as jsonb spaces it
		{`"{\"sealed\":\"v1:abc\"}"`, "", false},        // a string that looks like one
		{`{"sealed":"v1:a","key":"b"}`, "", false},      // a second member
		{`{"key":"sealed"}`, "", false},                 // an attachment
		{`{"sealed":1}`, "", false},
		{`{"sealed":"v1:a\"b"}`, "", false},
		{`null`, "", false},
		{`{}`, "", false},
	} {
		box, ok := sealedBox([]byte(c.in))
		if ok != c.want || string(box) != c.box {
			t.Errorf("sealedBox(%s) = %q, %v; want %q, %v", c.in, box, ok, c.box, c.want)
		}
	}
}
