package domain_test

import (
	"strings"
	"testing"

	"github.com/evchat/evchat/domain"
)

func TestValidEmoji(t *testing.T) {
	for _, tc := range []struct {
		name, s string
		want    bool
	}{
		{"thumbs up", "👍", true},
		{"with skin tone", "👍🏽", true},
		{"heart with emoji presentation", "❤️", true},
		{"text-style heart", "❤", true},
		{"zwj family", "👨‍👩‍👧‍👦", true},
		{"zwj profession with tone", "👩🏾‍🚀", true},
		{"flag pair", "🇫🇷", true},
		{"subdivision flag", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", true},
		{"keycap", "1️⃣", true},
		{"keycap without selector", "#⃣", true},
		{"rainbow flag", "🏳️‍🌈", true},
		{"empty", "", false},
		{"letter", "a", false},
		{"digit alone", "7", false},
		{"word", "ok", false},
		{"two emoji", "👍👍", false},
		{"emoji and letter", "👍a", false},
		{"three regional indicators", "🇫🇷🇩", false},
		{"lone regional indicator", "🇫", false},
		{"combining accent", "e\u0301", false},
		{"cjk", "漢", false},
		{"nul", "\x00", false},
		{"invalid utf-8", "\xff", false},
		{"space", " ", false},
		{"emoji with space", "👍 ", false},
		{"too long", strings.Repeat("👍\u200d", 20) + "👍", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := domain.ValidEmoji(tc.s); got != tc.want {
				t.Errorf("ValidEmoji(%q) = %v; want %v", tc.s, got, tc.want)
			}
		})
	}
}

func TestMessageLifeRules(t *testing.T) {
	c := &domain.Conversation{}
	c.Apply(domain.ConversationCreated{ConversationID: 1, Type: domain.Group, CreatedBy: 2,
		Members: []domain.Membership{{UserID: 2, MembershipID: 1}, {UserID: 3, MembershipID: 2}, {UserID: 4, MembershipID: 3}}})
	m := &domain.MessageState{ID: 9}
	m.Apply(domain.MessageSent{ConversationID: 1, MessageID: 9, SenderID: 3})
	l := domain.DefaultLimits()
	if _, err := c.Edit(m, 4, "x", l); err != domain.ErrNotSender {
		t.Errorf("edit by another member: %v; want ErrNotSender", err)
	}
	if _, err := c.Edit(m, 5, "x", l); err != domain.ErrNotMember {
		t.Errorf("edit by a stranger: %v; want ErrNotMember", err)
	}
	if _, err := c.Edit(m, 3, "a\x00b", l); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("edit with NUL: %v; want invalid", err)
	}
	if evs, err := c.Edit(m, 3, "new", l); err != nil || len(evs) != 1 {
		t.Errorf("edit by its sender: %v %v; want one event", evs, err)
	}
	if _, err := c.Delete(m, 4); err != domain.ErrNotSenderOrAdmin {
		t.Errorf("delete by another member: %v; want ErrNotSenderOrAdmin", err)
	}
	for i := range domain.MaxReactions {
		e := string(rune(0x1F600 + i))
		evs, err := c.React(m, 4, e, true)
		if err != nil || len(evs) != 1 {
			t.Fatalf("reaction %d: %v %v", i, evs, err)
		}
		m.Apply(evs[0])
	}
	if evs, err := c.React(m, 4, "😀", true); err != nil || len(evs) != 0 {
		t.Errorf("repeated reaction: %v %v; want nothing", evs, err)
	}
	if _, err := c.React(m, 2, "🎉", true); err != domain.ErrTooManyReactions {
		t.Errorf("21st emoji: %v; want ErrTooManyReactions", err)
	}
	if evs, err := c.React(m, 2, "😀", true); err != nil || len(evs) != 1 {
		t.Errorf("another user's existing emoji: %v %v; want one event", evs, err)
	}
	evs, err := c.Delete(m, 2) // the creator is an admin
	if err != nil || len(evs) != 1 {
		t.Fatalf("delete by an admin: %v %v", evs, err)
	}
	m.Apply(evs[0])
	if evs, err := c.Delete(m, 3); err != nil || len(evs) != 0 {
		t.Errorf("second delete: %v %v; want nothing, no error", evs, err)
	}
	if _, err := c.Edit(m, 3, "again", l); err != domain.ErrMessageDeleted {
		t.Errorf("edit after delete: %v; want ErrMessageDeleted", err)
	}
	if _, err := c.React(m, 3, "👍", true); err != domain.ErrMessageDeleted {
		t.Errorf("reaction after delete: %v; want ErrMessageDeleted", err)
	}
	other := &domain.MessageState{ID: 10}
	other.Apply(domain.MessageSent{ConversationID: 7, MessageID: 10, SenderID: 3})
	if _, err := c.Edit(other, 3, "x", l); err != domain.ErrMessageNotFound {
		t.Errorf("edit of another room's message: %v; want ErrMessageNotFound", err)
	}
}
