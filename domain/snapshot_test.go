package domain

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestConversationSnapshotRoundTrip(t *testing.T) {
	name, desc := "team", "the team's room"
	c := &Conversation{}
	for _, e := range []Event{
		ConversationCreated{ConversationID: 7, Type: Group, Name: &name, Description: &desc, CreatedBy: 3,
			Members: []Membership{{UserID: 3, MembershipID: 10}, {UserID: 9, MembershipID: 11}, {UserID: 4, MembershipID: 12}}},
		MessageSent{ConversationID: 7, MessageID: 41, SenderID: 3},
		MemberLeft{ConversationID: 7, UserID: 9},
		MemberJoined{ConversationID: 7, UserID: 5, MembershipID: 13},
		MessageSent{ConversationID: 7, MessageID: 42, SenderID: 5},
		AdminPromoted{ConversationID: 7, UserID: 5, By: 3},
		AdminPromoted{ConversationID: 7, UserID: 9, By: 3}, // not a member: no effect
	} {
		c.Apply(e)
	}
	b, err := json.Marshal(c.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var s ConversationSnapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	r := s.Restore()
	if !reflect.DeepEqual(r, c) {
		t.Fatalf("restored %+v; want %+v", r, c)
	}
	if got := r.Members(); !reflect.DeepEqual(got, []int64{3, 4, 5}) {
		t.Errorf("members = %v; want [3 4 5]", got)
	}
	if got := r.Admins(); !reflect.DeepEqual(got, []int64{3, 5}) {
		t.Errorf("admins = %v; want [3 5]", got)
	}
	// One state, one encoding: the members are ordered.
	again, _ := json.Marshal(r.Snapshot())
	if string(again) != string(b) {
		t.Errorf("re-encoded snapshot differs:\n%s\n%s", again, b)
	}
	// The restored state evolves like the original.
	r.Apply(MessageSent{ConversationID: 7, MessageID: 43, SenderID: 4})
	if r.LastMessageID != 43 || c.LastMessageID != 42 {
		t.Errorf("last message ids %d, %d; want 43, 42", r.LastMessageID, c.LastMessageID)
	}
}
