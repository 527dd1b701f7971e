package shred

import (
	"testing"

	"github.com/evchat/evchat/domain"
)

func TestSplice(t *testing.T) {
	data := []byte(`{"a":"x","b":1,"c":"yy"}`)
	m, _ := locate(data, domain.Personal{Fields: []domain.PersonalField{{Name: "a"}, {Name: "c"}}})
	a, _ := m.get("a")
	c, _ := m.get("c")
	got := splice(data, []edit{{at: c, value: []byte(`null`)}, {at: a, value: []byte(`{"sealed":"v1:z"}`)}})
	if want := `{"a":{"sealed":"v1:z"},"b":1,"c":null}`; string(got) != want {
		t.Errorf("splice = %s; want %s", got, want)
	}
}

func TestLocateKeepsTheNamedMembers(t *testing.T) {
	p := domain.Personal{Owner: []string{"sender_id", "user_id"}, Fields: []domain.PersonalField{{Name: "text"}}}
	data := []byte(`{"text":"a","conversation_id":7,"sender_id":3,"receivers":[1,2],"text":"b"}`)
	m, ok := locate(data, p)
	if !ok {
		t.Fatal("locate refused a plain object")
	}
	if len(m) != 2 {
		t.Errorf("located %d members (%v); want text and sender_id only", len(m), m)
	}
	if at, ok := m.get("text"); !ok || string(data[at.Start:at.End]) != `"b"` {
		t.Errorf("text at %v, %v; want the last value, as encoding/json reads it", at, ok)
	}
	if owner, ok := ownerOf(data, m, p); !ok || owner != 3 {
		t.Errorf("owner = %d, %v; want 3", owner, ok)
	}
	if _, ok := m.get("conversation_id"); ok {
		t.Error("a member p does not name was kept")
	}
	if _, ok := locate([]byte(`{"text":"a"} x`), p); ok {
		t.Error("locate accepted what follows the object")
	}
}
