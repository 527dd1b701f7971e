package shred_test

import (
	"context"
	"strings"
	"testing"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/shred"
)

// BenchmarkBigMessage reads one 64 KiB message through the shredder.
func BenchmarkBigMessage(b *testing.B) {
	ctx := context.Background()
	inner, keys := &memStore{}, newKeys()
	s := shred.New(inner, keys, shred.Options{})
	if _, err := s.Append(ctx, "c", eventstore.Any(), event(b, sent(1, strings.Repeat("x", 64<<10), nil))); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.ReadAll(ctx, eventstore.Start, 1); err != nil {
			b.Fatal(err)
		}
	}
}
