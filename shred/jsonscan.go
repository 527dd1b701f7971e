package shred

import (
	"bytes"
	"slices"
	"strconv"
)

// The shredder rewrites a few members of every personal event on every
// read. encoding/json would decode the whole payload into a map and encode
// it again (three passes in Go over a message's text, which may be 64 KiB
// and, sealed, base64). Instead a payload's top-level members are located
// once, with the byte searches of package bytes, and the rewritten values
// are spliced in; everything else is copied as it is.

// span is where one member's value lies in a payload.
type span struct{ start, end int }

// members locates the values of the top-level members of a JSON object.
// ok is false for anything it does not follow (not an object, escaped
// member names, malformed input): the caller leaves such a payload alone,
// and the event decoder reports it if it is broken.
func members(data []byte) (map[string]span, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	out := make(map[string]span, 8)
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return out, true
	}
	for i < len(data) {
		if data[i] != '"' {
			return nil, false
		}
		end := stringEnd(data, i)
		if end < 0 || bytes.IndexByte(data[i+1:end], '\\') >= 0 {
			return nil, false
		}
		name := string(data[i+1 : end])
		i = skipSpace(data, end+1)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if vend < 0 {
			return nil, false
		}
		out[name] = span{i, vend}
		i = skipSpace(data, vend)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return out, true
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the quote that closes the string opening
// at data[i], or -1.
func stringEnd(data []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for b := q - 1; b > i && data[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		j = q + 1
	}
}

// valueEnd returns the index just past the value starting at data[i], or -1.
func valueEnd(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		e := stringEnd(data, i)
		if e < 0 {
			return -1
		}
		return e + 1
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				e := stringEnd(data, j)
				if e < 0 {
					return -1
				}
				j = e
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(data) && !endsLiteral(data[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// memberInt returns the integer value of a member, if it is one.
func memberInt(data []byte, m map[string]span, name string) (int64, bool) {
	s, ok := m[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(data[s.start:s.end]), 10, 64)
	return n, err == nil
}

// isNullValue reports whether a value is JSON null.
func isNullValue(v []byte) bool { return string(v) == "null" }

// edit is one value to replace in a payload.
type edit struct {
	at    span
	value []byte
}

// splice returns data with the edits applied (any order; no overlaps).
func splice(data []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(a, b edit) int { return a.at.start - b.at.start })
	size := len(data)
	for _, e := range edits {
		size += len(e.value) - (e.at.end - e.at.start)
	}
	out := make([]byte, 0, size)
	prev := 0
	for _, e := range edits {
		out = append(out, data[prev:e.at.start]...)
		out = append(out, e.value...)
		prev = e.at.end
	}
	return append(out, data[prev:]...)
}

// endsLiteral reports whether c ends a number, true, false or null.
func endsLiteral(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
