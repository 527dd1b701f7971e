package domain_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/evchat/evchat/domain"
)

// TestPersonalDataDeclared: every registered event type either declares
// its personal fields or is declared to hold none, exactly once, so that a
// new event type cannot carry personal data past the shredder unnoticed.
func TestPersonalDataDeclared(t *testing.T) {
	personal := domain.PersonalData()
	none := domain.NoPersonalData()
	for _, typ := range none {
		if _, ok := personal[typ]; ok {
			t.Errorf("%s is declared both with and without personal data", typ)
		}
	}
	registered := domain.NewRegistry().Types()
	for _, typ := range registered {
		_, declared := personal[typ]
		if !declared && !slices.Contains(none, typ) {
			t.Errorf("event type %s is registered but not declared in domain/personal.go (PersonalData or NoPersonalData)", typ)
		}
	}
	for typ := range personal {
		if !slices.Contains(registered, typ) {
			t.Errorf("PersonalData declares %s, which is not registered", typ)
		}
	}
	for _, typ := range none {
		if !slices.Contains(registered, typ) {
			t.Errorf("NoPersonalData declares %s, which is not registered", typ)
		}
	}
}

// TestPersonalFieldsExist: the owner and at least one personal field of
// each declaration are members of the current payload, and the
// placeholders are JSON.
func TestPersonalFieldsExist(t *testing.T) {
	samples := map[string]domain.Event{
		domain.TypeUserRegistered: domain.UserRegistered{UserID: 1, Username: "a"}, domain.TypeUsernameReserved: domain.UsernameReserved{UserID: 1, Username: "a"},
		domain.TypeRegistrationAbandoned: domain.RegistrationAbandoned{UserID: 1, Username: "a"},
		domain.TypeConversationCreated:   domain.ConversationCreated{CreatedBy: 1, Name: personalPtr("n"), Description: personalPtr("d")},
		domain.TypeConversationUpdated:   domain.ConversationUpdated{UpdatedBy: 1, Name: personalPtr("n"), Description: personalPtr("d")},
		domain.TypeMessageSent:           domain.MessageSent{SenderID: 1, Text: "t", Picture: &domain.Attachment{Key: "k"}, Video: &domain.Attachment{Key: "k"}},
		domain.TypeMessageEdited:         domain.MessageEdited{EditorID: 1, Text: "t"},
	}
	for typ, p := range domain.PersonalData() {
		e, ok := samples[typ]
		if !ok {
			t.Errorf("no sample of %s: add one", typ)
			continue
		}
		b, _ := json.Marshal(e)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(b, &m)
		if _, ok := m[p.Owner[0]]; !ok {
			t.Errorf("%s: owner member %q is not in the payload %s", typ, p.Owner[0], b)
		}
		found := 0
		for _, f := range p.Fields {
			if !json.Valid([]byte(f.Forgotten)) {
				t.Errorf("%s.%s: placeholder %q is not JSON", typ, f.Name, f.Forgotten)
			}
			if _, ok := m[f.Name]; ok {
				found++
			}
		}
		if found == 0 {
			t.Errorf("%s: none of its personal fields is in the payload %s", typ, b)
		}
	}
}

func personalPtr(s string) *string { return &s }
