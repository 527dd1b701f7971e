// Package jsonscan locates the top-level members of a JSON object with the
// byte searches of package bytes, for the hot paths that read or rewrite a
// few members of every event (the shredder, event metadata) without
// decoding the whole payload.
package jsonscan

import (
	"bytes"
	"strconv"
)

// Span is where one member's value lies in a payload: data[Start:End].
type Span struct{ Start, End int }

// Each calls f with the name and the value's place of each top-level member
// of a JSON object, in order, and reports whether the object is one it
// follows and f accepted every member: a decoder keeps what f read only
// when Each returns true. It does not follow anything but an object,
// escaped member names, malformed input, or anything after the object: the
// caller leaves such a payload alone, or hands it to encoding/json. The
// values are located, not checked. A repeated name comes to f each time (a
// decoder that must read as encoding/json does declines it: encoding/json
// decodes every value, failing on a bad one, merging objects). name is
// valid only during the call. Each allocates nothing.
func Each(data []byte, f func(name []byte, at Span) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for i < len(data) {
		if data[i] != '"' {
			return false
		}
		end := StringEnd(data, i)
		if end < 0 || bytes.IndexByte(data[i+1:end], '\\') >= 0 {
			return false
		}
		name := data[i+1 : end]
		i = skipSpace(data, end+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if vend < 0 || !f(name, Span{i, vend}) {
			return false
		}
		i = skipSpace(data, vend)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
	return false
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

// PlainString reads a JSON string without escapes, of printable ASCII:
// what encoding/json would read, without its decoder. Anything else is not
// ok, for the caller to hand to encoding/json.
func PlainString(v []byte) (string, bool) {
	if !IsPlainString(v) {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}

// IsPlainString reports whether v is a JSON string without escapes, of
// printable ASCII.
func IsPlainString(v []byte) bool {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// Integer reads a JSON integer that fits an int64.
func Integer(v []byte) (int64, bool) {
	digits := v
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}
