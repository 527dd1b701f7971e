package domain

import (
	"encoding/json"
	"strconv"

	"github.com/evchat/evchat/internal/jsonscan"
)

// ParseMetadata decodes an event's metadata as json.Unmarshal would, without
// reflection for the flat objects the log holds (plain string and integer
// values, written by json.Marshal or re-spaced by a JSON store): every reader
// of the log decodes one per event. Anything else goes to json.Unmarshal.
func ParseMetadata(b []byte) (Metadata, error) {
	if md, ok := scanMetadata(b); ok {
		return md, nil
	}
	var md Metadata
	err := json.Unmarshal(b, &md)
	return md, err
}

// scanMetadata is ParseMetadata's fast path; ok false sends the input to
// json.Unmarshal (which decides what is valid).
func scanMetadata(b []byte) (md Metadata, ok bool) {
	ok = scanMembers(b, func(name, v []byte) (field int, ok bool) {
		switch string(name) {
		case "actor_id":
			md.ActorID, ok = integer(v)
		case "request_id":
			field = 1
			md.RequestID, ok = plainString(v)
		case "correlation_id":
			field = 2
			md.CorrelationID, ok = plainString(v)
		case "causation_id":
			field = 3
			md.CausationID, ok = plainString(v)
		case "time":
			field = 4
			ok = isPlainString(v) && md.Time.UnmarshalJSON(v) == nil
		case "v":
			field = 5
			var n int64
			n, ok = integer(v)
			md.Version = int(n)
		}
		return field, ok // another member, or a name in another case: not ok
	})
	return md, ok
}

// scanMembers walks the members of the JSON object b for a fast path: read
// gets each member's name and value and returns the member's field number
// (0 to 7) and whether it read the value. A field met twice declines the
// object, as anything read refuses: encoding/json reads every value of a
// repeated name (failing on a bad one, merging objects).
func scanMembers(b []byte, read func(name, value []byte) (field int, ok bool)) bool {
	var seen uint8
	return jsonscan.Each(b, func(name []byte, at jsonscan.Span) bool {
		field, ok := read(name, b[at.Start:at.End])
		bit := uint8(1) << field
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// plainString reads a JSON string without escapes, of printable ASCII.
func plainString(v []byte) (string, bool) {
	if !isPlainString(v) {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}

// isPlainString reports whether v is a JSON string without escapes, of
// printable ASCII.
func isPlainString(v []byte) bool {
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

// integer reads a JSON integer that fits an int64.
func integer(v []byte) (int64, bool) {
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
