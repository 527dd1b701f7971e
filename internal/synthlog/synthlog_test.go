package synthlog

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/evchat/evchat/domain"
)

func TestRowsShape(t *testing.T) {
	c := Config{Events: 500, Users: 100, Rooms: 20}
	rows := Rows(c)
	if len(rows) != c.Events {
		t.Fatalf("%d rows; want %d", len(rows), c.Events)
	}
	revs := map[string]int64{}
	created, sent := 0, 0
	for i, row := range rows {
		if len(row) != len(Columns) {
			t.Fatalf("row %d has %d values; want %d", i, len(row), len(Columns))
		}
		stream, rev := row[1].(string), row[2].(int64)
		if rev != revs[stream] {
			t.Fatalf("row %d: %s at revision %d; want %d", i, stream, rev, revs[stream])
		}
		revs[stream]++
		if !json.Valid([]byte(row[4].(string))) || !json.Valid([]byte(row[5].(string))) {
			t.Fatalf("row %d: data or metadata is not JSON", i)
		}
		switch {
		case strings.HasPrefix(stream, "conversation-") && rev == 0:
			created++
			if i >= c.CreationEvents() {
				t.Fatalf("room created at row %d, after the messages began", i)
			}
		case strings.HasPrefix(stream, "conversation-"):
			sent++
		}
	}
	if created != c.Rooms {
		t.Errorf("%d rooms created; want %d", created, c.Rooms)
	}
	if sent == 0 || sent != c.Messages() {
		t.Errorf("%d messages; Messages says %d", sent, c.Messages())
	}
}

func TestMessagesCountsRows(t *testing.T) {
	for _, c := range []Config{
		{Events: 1000, Users: 100, Rooms: 10}, {Events: 221, Users: 100, Rooms: 1}, {Events: 222, Users: 100, Rooms: 1},
		{Events: 5000, Users: 200, Rooms: 1000}, {Events: 100, Users: 100, Rooms: 10},
	} {
		n := 0
		for _, row := range Rows(c) {
			if row[3].(string) == domain.TypeMessageSent {
				n++
			}
		}
		if n != c.Messages() {
			t.Errorf("%+v: Rows writes %d messages; Messages says %d", c, n, c.Messages())
		}
	}
}

func TestShortLogHoldsEveryRoom(t *testing.T) {
	c := Config{Events: 10, Users: 100, Rooms: 30}
	if got := len(Rows(c)); got != c.CreationEvents() {
		t.Errorf("%d rows; want the %d creation events", got, c.CreationEvents())
	}
}

func TestMembersDistinct(t *testing.T) {
	c := Config{Users: 66, Rooms: 1000}
	for r := int64(1); r <= int64(c.Rooms); r++ {
		m := c.Members(r)
		if len(m) < 3 || len(m) > 6 {
			t.Fatalf("room %d has %d members", r, len(m))
		}
		s := slices.Clone(m)
		slices.Sort(s)
		if len(slices.Compact(s)) != len(m) {
			t.Fatalf("room %d has repeated members %v", r, m)
		}
		for _, u := range m {
			if u < 1 || u > int64(c.Users) {
				t.Fatalf("room %d has user %d outside 1..%d", r, u, c.Users)
			}
		}
	}
}
