// Package jsonscan locates the top-level members of a JSON object with the
// byte searches of package bytes, for the hot paths that read or rewrite a
// few members of every event (the shredder, event metadata) without
// decoding the whole payload.
package jsonscan

import "bytes"

// Span is where one member's value lies in a payload: data[Start:End].
type Span struct{ Start, End int }

// Members locates the values of the top-level members of a JSON object.
// ok is false for anything it does not follow (not an object, escaped
// member names, malformed input, anything after the object): the caller
// leaves such a payload alone, or hands it to encoding/json. A member named
// twice is located at its last value, as encoding/json reads it. The
// values are located, not checked.
func Members(data []byte) (map[string]Span, bool) {
	return members(data, false)
}

// DistinctMembers is Members for a decoder that reads each value as
// encoding/json would: ok is also false when a name repeats, since
// encoding/json decodes every value of a repeated member (failing on a
// bad one, merging objects) where Members locates only the last.
func DistinctMembers(data []byte) (map[string]Span, bool) {
	return members(data, true)
}

func members(data []byte, distinct bool) (map[string]Span, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	out := make(map[string]Span, 8)
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return out, skipSpace(data, i+1) == len(data)
	}
	for i < len(data) {
		if data[i] != '"' {
			return nil, false
		}
		end := StringEnd(data, i)
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
		if _, seen := out[name]; seen && distinct {
			return nil, false
		}
		out[name] = Span{i, vend}
		i = skipSpace(data, vend)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			if skipSpace(data, i+1) != len(data) {
				return nil, false
			}
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

// StringEnd returns the index of the quote that closes the string opening
// at data[i], or -1.
func StringEnd(data []byte, i int) int {
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
		e := StringEnd(data, i)
		if e < 0 {
			return -1
		}
		return e + 1
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				e := StringEnd(data, j)
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

// endsLiteral reports whether c ends a number, true, false or null.
func endsLiteral(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
