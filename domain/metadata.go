package domain

import (
	"encoding/json"
	"strconv"
)

// ParseMetadata decodes an event's metadata as json.Unmarshal would, without
// reflection for the flat objects the log holds (string and number values,
// written by json.Marshal or re-spaced by a JSON store): every reader of the
// log decodes one per event. Anything else goes to json.Unmarshal.
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
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return md, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return md, skipSpace(b, i+1) == len(b)
	}
	seen := 0
	for {
		key, next, ok := plainString(b, i)
		if !ok {
			return md, false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return md, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return md, false
		}
		var str, quoted, num []byte
		if b[i] == '"' {
			if str, next, ok = plainString(b, i); !ok {
				return md, false
			}
			quoted = b[i:next]
		} else {
			next = i
			for next < len(b) && (b[next] >= '0' && b[next] <= '9' || b[next] == '-') {
				next++
			}
			if num = b[i:next]; len(num) == 0 {
				return md, false // true, null, an object...: the slow path
			}
		}
		i = next
		bit := 0
		switch string(key) {
		case "actor_id":
			bit = 1
			if md.ActorID, ok = integer(num); !ok {
				return md, false
			}
		case "request_id":
			bit, md.RequestID, ok = 2, string(str), str != nil
		case "correlation_id":
			bit, md.CorrelationID, ok = 4, string(str), str != nil
		case "causation_id":
			bit, md.CausationID, ok = 8, string(str), str != nil
		case "time":
			bit, ok = 16, str != nil
			if ok {
				ok = md.Time.UnmarshalJSON(quoted) == nil
			}
		case "v":
			bit = 32
			var v int64
			v, ok = integer(num)
			md.Version = int(v)
		default:
			return md, false
		}
		if !ok || seen&bit != 0 { // a repeated key: json.Unmarshal's rules
			return md, false
		}
		seen |= bit
		i = skipSpace(b, i)
		if i >= len(b) {
			return md, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return md, skipSpace(b, i+1) == len(b)
		default:
			return md, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads the string at b[i] when it has no escapes and only
// printable ASCII, returning its bytes and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// integer reads a JSON integer that fits an int64.
func integer(num []byte) (int64, bool) {
	if len(num) == 0 || (len(num) > 1 && num[0] == '0') || (len(num) > 2 && num[0] == '-' && num[1] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	return n, err == nil
}
