package domain

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/evchat/evchat/internal/jsonscan"
)

// decodeMessageSent decodes a chat.message_sent payload as json.Unmarshal
// would, without reflection for the payloads json.Marshal writes (integer
// ids, a plain array of receivers, text without escapes): a rebuild decodes
// one per message, and with encoding/json that was most of its own work.
// Anything else goes to json.Unmarshal.
func decodeMessageSent(b []byte) (Event, error) {
	if m, ok := scanMessageSent(b); ok {
		return m, nil
	}
	var m MessageSent
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// scanMessageSent is decodeMessageSent's fast path; ok false sends the
// input to json.Unmarshal (which decides what is valid).
func scanMessageSent(b []byte) (m MessageSent, ok bool) {
	ok = scanMembers(b, func(name, v []byte) (field int, ok bool) {
		switch string(name) {
		case "conversation_id":
			m.ConversationID, ok = jsonscan.Integer(v)
		case "message_id":
			field = 1
			m.MessageID, ok = jsonscan.Integer(v)
		case "sender_id":
			field = 2
			m.SenderID, ok = jsonscan.Integer(v)
		case "reply_to":
			field = 3
			m.ReplyTo, ok = jsonscan.Integer(v)
		case "receivers":
			field = 4
			m.Receivers, ok = integers(v)
		case "text":
			field = 5
			m.Text, ok = text(v)
		case "attachment_picture":
			field = 6
			m.Picture, ok = attachment(v)
		case "attachment_video":
			field = 7
			m.Video, ok = attachment(v)
		}
		return field, ok // another member, or a name in another case: not ok
	})
	return m, ok
}

// integers reads a JSON array of integers that fit an int64 (an empty
// array is an empty slice, as json.Unmarshal makes it).
func integers(v []byte) ([]int64, bool) {
	i := space(v, 0)
	if i >= len(v) || v[i] != '[' {
		return nil, false
	}
	// One allocation: the array holds at most one more element than commas.
	n := 1
	for _, c := range v[i:] {
		if c == ',' {
			n++
		}
	}
	out := make([]int64, 0, n)
	i = space(v, i+1)
	if i < len(v) && v[i] == ']' {
		return out, space(v, i+1) == len(v)
	}
	for i < len(v) {
		start := i
		for i < len(v) && v[i] != ',' && v[i] != ']' && v[i] != ' ' && v[i] != '\t' && v[i] != '\n' && v[i] != '\r' {
			i++
		}
		n, ok := jsonscan.Integer(v[start:i])
		if !ok {
			return nil, false
		}
		out = append(out, n)
		if i = space(v, i); i >= len(v) {
			return nil, false
		}
		if v[i] == ']' {
			return out, space(v, i+1) == len(v)
		}
		if v[i] != ',' {
			return nil, false
		}
		i = space(v, i+1)
	}
	return nil, false
}

// space skips JSON whitespace from i.
func space(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

// text reads a JSON string without escapes: valid UTF-8 without control
// characters (which json.Unmarshal refuses, or would change).
func text(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	s := v[1 : len(v)-1]
	for _, c := range s {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(s) {
		return "", false
	}
	return string(s), true
}

// attachment reads null or an attachment object (with json.Unmarshal: a
// message has one rarely).
func attachment(v []byte) (*Attachment, bool) {
	if string(v) == "null" {
		return nil, true
	}
	var a Attachment
	if len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &a) != nil {
		return nil, false
	}
	return &a, true
}
