package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/evchat/evchat/domain"
)

// group returns a group created by 1 with members 2 and 3 (memberships 10,
// 11, 12), after applying more.
func group(more ...domain.Event) *domain.Conversation {
	c := &domain.Conversation{}
	c.Apply(domain.ConversationCreated{ConversationID: 7, Type: domain.Group, CreatedBy: 1,
		Members: []domain.Membership{{UserID: 1, MembershipID: 10}, {UserID: 3, MembershipID: 11}, {UserID: 2, MembershipID: 12}}})
	for _, e := range more {
		c.Apply(e)
	}
	return c
}

func TestAdministrationRefusals(t *testing.T) {
	l := domain.DefaultLimits()
	c := group()
	name := "n"
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"update by a member", func() error { _, err := c.Update(2, &name, nil, l); return err }(), domain.ErrNotAdmin},
		{"update by a stranger", func() error { _, err := c.Update(9, &name, nil, l); return err }(), domain.ErrNotMember},
		{"update of no room", func() error { _, err := (&domain.Conversation{}).Update(1, &name, nil, l); return err }(), domain.ErrConversationNotFound},
		{"add by a member", func() error { _, err := c.CheckAdd(2, 9, l); return err }(), domain.ErrNotAdmin},
		{"remove by a member", func() error { _, err := c.Remove(2, 3); return err }(), domain.ErrNotAdmin},
		{"remove a stranger", func() error { _, err := c.Remove(1, 9); return err }(), domain.ErrNotMemberToLeave},
		{"promote a stranger", func() error { _, err := c.Promote(1, 9); return err }(), domain.ErrNotAMember},
		{"promote by a member", func() error { _, err := c.Promote(3, 2); return err }(), domain.ErrNotAdmin},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v; want %v", tc.name, tc.err, tc.want)
		}
	}
	long := strings.Repeat("x", 256)
	if _, err := c.Update(1, &long, nil, l); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("a long name: got %v; want a field error", err)
	}
}

func TestUpdateOnlyChanges(t *testing.T) {
	l := domain.DefaultLimits()
	name := "n"
	c := group(domain.ConversationUpdated{ConversationID: 7, UpdatedBy: 1, Name: &name})
	if evs, err := c.Update(1, &name, nil, l); err != nil || len(evs) != 0 {
		t.Fatalf("the same name: got %v, %v; want nothing", evs, err)
	}
	d := "d"
	evs, err := c.Update(1, &name, &d, l)
	if err != nil || len(evs) != 1 || evs[0].(domain.ConversationUpdated).Name != nil {
		t.Fatalf("a new description: got %v, %v; want only the description", evs, err)
	}
}

func TestSuccession(t *testing.T) {
	// The creator leaves: member 3 (membership 11) is the longest-standing.
	c := group()
	evs, err := c.Leave(1)
	if err != nil || len(evs) != 2 {
		t.Fatalf("leave: %v, %v; want member_left and admin_promoted", evs, err)
	}
	if p, ok := evs[1].(domain.AdminPromoted); !ok || p.UserID != 3 || p.By != 0 {
		t.Fatalf("promotion = %#v; want user 3 by nobody", evs[1])
	}
	for _, e := range evs {
		c.Apply(e)
	}
	if !slices.Equal(c.Admins(), []int64{3}) {
		t.Fatalf("admins = %v; want [3]", c.Admins())
	}
	// Another admin remains: no promotion.
	c = group(domain.AdminPromoted{ConversationID: 7, UserID: 2, By: 1})
	if evs, _ := c.Remove(2, 1); len(evs) != 1 || evs[0].(domain.MemberLeft).By != 2 {
		t.Fatalf("remove the creator by the other admin: %v; want one member_left by 2", evs)
	}
	// The last member leaving leaves nobody to promote.
	c = &domain.Conversation{}
	c.Apply(domain.ConversationCreated{ConversationID: 8, Type: domain.Group, CreatedBy: 1, Members: []domain.Membership{{UserID: 1, MembershipID: 1}}})
	if evs, _ := c.Leave(1); len(evs) != 1 {
		t.Fatalf("last member leaves: %v; want only member_left", evs)
	}
}
