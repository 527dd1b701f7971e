package domain

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzScanMessageSent checks the fast path against json.Unmarshal:
// whenever it answers, it answers the same.
func FuzzScanMessageSent(f *testing.F) {
	f.Add([]byte(`{"conversation_id":3,"message_id":17,"sender_id":2,"receivers":[1,4],"text":"Hello, world!"}`))
	f.Add([]byte(`{"conversation_id": 3, "message_id": 17, "sender_id": 2, "receivers": [ ], "text": "héllo ✓", "reply_to": 9}`))
	f.Add([]byte(`{"conversation_id":3,"message_id":17,"sender_id":2,"receivers":null,"text":"a \"quoted\" word"}`))
	f.Add([]byte(`{"conversation_id":3,"message_id":17,"sender_id":2,"receivers":[1],"text":"","attachment_picture":{"key":"k","content_type":"image/png","size":3},"attachment_video":null}`))
	f.Add([]byte(`{"Text":"another case","receivers":[1,1],"message_id":-0}`))
	// A repeated member: json.Unmarshal decodes every value (refusing a
	// bad first one, merging objects).
	f.Add([]byte(`{"conversation_id":"x","conversation_id":3}`))
	f.Add([]byte(`{"attachment_picture":{"key":"a","size":3},"attachment_picture":{"key":"b"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, fast := scanMessageSent(b)
		if !fast {
			return
		}
		var want MessageSent
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path accepted %q, which json.Unmarshal refuses: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast path %+v; json.Unmarshal %+v", b, got, want)
		}
	})
}

// TestScanMessageSentTakesWhatJSONMarshalWrites: the payloads the
// application writes take the fast path.
func TestScanMessageSentTakesWhatJSONMarshalWrites(t *testing.T) {
	for _, m := range []MessageSent{
		{ConversationID: 3, MessageID: 17, SenderID: 2, Receivers: []int64{1, 4}, Text: "Hello, world!"},
		{ConversationID: 3, MessageID: 18, SenderID: 2, Receivers: []int64{}, Text: "héllo ✓ 👋", ReplyTo: 17},
		{ConversationID: 3, MessageID: 19, SenderID: 2, Receivers: []int64{1}, Picture: &Attachment{Key: "k", ContentType: "image/png", Size: 3}},
	} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, fast := scanMessageSent(b)
		if !fast || !reflect.DeepEqual(got, m) {
			t.Errorf("%s: fast path %v, %+v; want %+v", b, fast, got, m)
		}
	}
}
