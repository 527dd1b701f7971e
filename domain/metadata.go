package domain

import (
	"encoding/json"

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
			md.ActorID, ok = jsonscan.Integer(v)
		case "request_id":
			field = 1
			md.RequestID, ok = jsonscan.PlainString(v)
		case "correlation_id":
			field = 2
			md.CorrelationID, ok = jsonscan.PlainString(v)
		case "causation_id":
			field = 3
			md.CausationID, ok = jsonscan.PlainString(v)
		case "time":
			field = 4
			ok = jsonscan.IsPlainString(v) && md.Time.UnmarshalJSON(v) == nil
		case "v":
			field = 5
			var n int64
			n, ok = jsonscan.Integer(v)
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
