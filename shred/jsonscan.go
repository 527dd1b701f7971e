package shred

import (
	"slices"
	"strconv"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/internal/jsonscan"
)

// The shredder rewrites a few members of every personal event on every
// read. encoding/json would decode the whole payload into a map and encode
// it again (three passes in Go over a message's text, which may be 64 KiB
// and, sealed, base64). Instead a payload's top-level members are located
// once (package jsonscan) and the rewritten values are spliced in;
// everything else is copied as it is.

// members are the located values of the members of a payload that a
// domain.Personal names (its owners and its fields); a payload's other
// members are passed over. A slice of a few: a map of every member, with a
// string for each name, was most of what opening an event allocated.
type members []member

type member struct {
	name string // the Personal's string: nothing allocated per payload
	at   jsonscan.Span
}

// locate locates the members of data that p names. ok is false for a
// payload jsonscan does not follow. A member named twice is located at its
// last value, as encoding/json reads it.
func locate(data []byte, p domain.Personal) (m members, ok bool) {
	ok = jsonscan.Each(data, func(name []byte, at jsonscan.Span) bool {
		wanted, found := p.Member(name)
		if !found {
			return true
		}
		for i := range m {
			if m[i].name == wanted {
				m[i].at = at
				return true
			}
		}
		if m == nil {
			m = make(members, 0, len(p.Owner)+len(p.Fields))
		}
		m = append(m, member{name: wanted, at: at})
		return true
	})
	if !ok {
		return nil, false
	}
	return m, true
}

// get returns where the member named name lies.
func (m members) get(name string) (jsonscan.Span, bool) {
	for _, x := range m {
		if x.name == name {
			return x.at, true
		}
	}
	return jsonscan.Span{}, false
}

// memberInt returns the integer value of a member, if it is one.
func memberInt(data []byte, m members, name string) (int64, bool) {
	s, ok := m.get(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(data[s.Start:s.End]), 10, 64)
	return n, err == nil
}

// isNullValue reports whether a value is JSON null.
func isNullValue(v []byte) bool { return string(v) == "null" }

// edit is one value to replace in a payload.
type edit struct {
	at    jsonscan.Span
	value []byte
}

// splice returns data with the edits applied (any order; no overlaps).
func splice(data []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(a, b edit) int { return a.at.Start - b.at.Start })
	size := len(data)
	for _, e := range edits {
		size += len(e.value) - (e.at.End - e.at.Start)
	}
	out := make([]byte, 0, size)
	prev := 0
	for _, e := range edits {
		out = append(out, data[prev:e.at.Start]...)
		out = append(out, e.value...)
		prev = e.at.End
	}
	return append(out, data[prev:]...)
}
