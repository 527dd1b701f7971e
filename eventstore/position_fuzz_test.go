package eventstore_test

import (
	"errors"
	"testing"

	"github.com/evchat/evchat/eventstore"
)

// FuzzParsePosition: any text either is refused with ErrInvalidPosition or
// reads as a position whose own text reads back as the same position.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0-0", "1-1", "3w5e11264sgsf-3w5e11264sgsf", "a-b", "", "-", "1-", "-1", "1-2-3", "+1-2", "Z-z", "01-02"} {
		f.Add(s)
	}
	f.Add(eventstore.Position{Commit: 1<<64 - 1, Prepare: 1<<64 - 1}.String())
	f.Fuzz(func(t *testing.T, s string) {
		p, err := eventstore.ParsePosition(s)
		if err != nil {
			if !errors.Is(err, eventstore.ErrInvalidPosition) {
				t.Fatalf("ParsePosition(%q) = %v; want ErrInvalidPosition", s, err)
			}
			return
		}
		back, err := eventstore.ParsePosition(p.String())
		if err != nil || back != p {
			t.Fatalf("ParsePosition(%q) = %v, whose text %q reads as %v, %v", s, p, p.String(), back, err)
		}
	})
}
