package shred

import (
	"testing"

	"github.com/evchat/evchat/internal/jsonscan"
)

func TestSplice(t *testing.T) {
	data := []byte(`{"a":"x","b":1,"c":"yy"}`)
	m, _ := jsonscan.Members(data)
	got := splice(data, []edit{{at: m["c"], value: []byte(`null`)}, {at: m["a"], value: []byte(`{"sealed":"v1:z"}`)}})
	if want := `{"a":{"sealed":"v1:z"},"b":1,"c":null}`; string(got) != want {
		t.Errorf("splice = %s; want %s", got, want)
	}
}
