package shred

import (
	"slices"
	"strconv"

	"github.com/evchat/evchat/internal/jsonscan"
)

// The shredder rewrites a few members of every personal event on every
// read. encoding/json would decode the whole payload into a map and encode
// it again (three passes in Go over a message's text, which may be 64 KiB
// and, sealed, base64). Instead a payload's top-level members are located
// once (package jsonscan) and the rewritten values are spliced in;
// everything else is copied as it is.

// memberInt returns the integer value of a member, if it is one.
func memberInt(data []byte, m map[string]jsonscan.Span, name string) (int64, bool) {
	s, ok := m[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(data[s.Start:s.End]), 10, 64)
	return n, err == nil
}

// isNullValue reports whether a value is JSON null.
func isNullValue(v []byte) bool { return string(v) == "null" }

// edit is one value to replace in a payload.
type edit struct {
	at    jsonscan.Span
	value []byte
}

// splice returns data with the edits applied (any order; no overlaps).
func splice(data []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(a, b edit) int { return a.at.Start - b.at.Start })
	size := len(data)
	for _, e := range edits {
		size += len(e.value) - (e.at.End - e.at.Start)
	}
	out := make([]byte, 0, size)
	prev := 0
	for _, e := range edits {
		out = append(out, data[prev:e.at.Start]...)
		out = append(out, e.value...)
		prev = e.at.End
	}
	return append(out, data[prev:]...)
}
