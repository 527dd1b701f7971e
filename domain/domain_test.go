package domain_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/evchat/evchat/domain"
)

func room(t *testing.T, typ domain.ConversationType, members ...int64) *domain.Conversation {
	t.Helper()
	c := &domain.Conversation{}
	ids := make([]int64, len(members))
	for i := range ids {
		ids[i] = int64(100 + i)
	}
	n := domain.NewConversation{Type: typ, Creator: members[0], Members: members[1:]}
	ms, err := n.Check(domain.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range domain.Create(7, n, ms, ids) {
		c.Apply(e)
	}
	return c
}

func TestCheckNewConversation(t *testing.T) {
	l := domain.DefaultLimits()
	l.MaxGroupMembers = 3
	cases := []struct {
		name  string
		n     domain.NewConversation
		field string
		want  []int64
	}{
		{"direct with creator only", domain.NewConversation{Type: domain.Direct, Creator: 1}, "", []int64{1}},
		{"duplicates dropped", domain.NewConversation{Type: domain.Direct, Creator: 1, Members: []int64{2, 2, 1}}, "", []int64{1, 2}},
		{"direct over 2", domain.NewConversation{Type: domain.Direct, Creator: 1, Members: []int64{2, 3}}, "members", nil},
		{"group at cap", domain.NewConversation{Type: domain.Group, Creator: 1, Members: []int64{2, 3}}, "", []int64{1, 2, 3}},
		{"group over cap", domain.NewConversation{Type: domain.Group, Creator: 1, Members: []int64{2, 3, 4}}, "members", nil},
		{"bad type", domain.NewConversation{Type: "x", Creator: 1}, "type", nil},
		{"bad member id", domain.NewConversation{Type: domain.Group, Creator: 1, Members: []int64{-4}}, "members", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.n.Check(l)
			if tc.field == "" {
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("Check = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Kind != domain.KindInvalid || len(de.Fields[tc.field]) == 0 {
				t.Fatalf("Check error = %v; want invalid %s", err, tc.field)
			}
		})
	}
	_, err := domain.NewConversation{Type: "x", Creator: 1}.Check(l)
	if got := err.(*domain.Error).Fields["type"][0]; got != `"x" is not a valid choice.` {
		t.Errorf("type message = %q", got)
	}
}

func TestJoinLeaveRules(t *testing.T) {
	l := domain.DefaultLimits()
	c := room(t, domain.Direct, 1)
	if id, err := c.CheckJoin(1, l); err != nil || id != 100 {
		t.Errorf("creator CheckJoin = %d, %v; want existing membership 100", id, err)
	}
	if id, err := c.CheckJoin(2, l); err != nil || id != 0 {
		t.Fatalf("CheckJoin(2) = %d, %v; want a new membership", id, err)
	}
	for _, e := range c.Join(2, 101) {
		c.Apply(e)
	}
	if _, err := c.CheckJoin(3, l); !errors.Is(err, domain.ErrNotParty) {
		t.Errorf("third member of a direct chat: %v; want ErrNotParty", err)
	}
	for _, e := range mustLeave(t, c, 2) {
		c.Apply(e)
	}
	if _, err := c.CheckJoin(3, l); !errors.Is(err, domain.ErrNotParty) {
		t.Errorf("a stranger joining a direct chat one party left: %v; want ErrNotParty", err)
	}
	if id, err := c.CheckJoin(2, l); err != nil || id != 0 {
		t.Errorf("a party rejoining = %d, %v; want a new membership", id, err)
	}
	for _, e := range c.Join(2, 101) {
		c.Apply(e)
	}
	if _, err := (&domain.Conversation{}).CheckJoin(3, l); !errors.Is(err, domain.ErrConversationNotFound) {
		t.Errorf("join missing room: %v", err)
	}
	if _, err := c.Leave(3); !errors.Is(err, domain.ErrNotMemberToLeave) {
		t.Errorf("non-member leave: %v", err)
	}
	evs, err := c.Leave(2)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(evs[0])
	if got := c.Members(); !slices.Equal(got, []int64{1}) {
		t.Errorf("members after leave = %v; want [1]", got)
	}
}

func TestSendRules(t *testing.T) {
	l := domain.DefaultLimits()
	c := room(t, domain.Group, 3, 1, 2)
	if err := c.CheckSend(9, domain.MessageContent{Text: "hi"}, l); !errors.Is(err, domain.ErrNotMember) {
		t.Errorf("non-member send: %v; want ErrNotMember", err)
	}
	if err := c.CheckSend(1, domain.MessageContent{}, l); !errors.Is(err, domain.ErrEmptyMessage) {
		t.Errorf("empty send: %v", err)
	}
	if err := c.CheckSend(1, domain.MessageContent{Text: string(make([]byte, l.MaxTextBytes+1))}, l); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("oversized text: %v", err)
	}
	msg := c.Send(2, 55, domain.MessageContent{Text: "hi"})[0].(domain.MessageSent)
	if !slices.Equal(msg.Receivers, []int64{1, 3}) || msg.SenderID != 2 || msg.MessageID != 55 {
		t.Errorf("message = %+v; want receivers [1 3] from 2", msg)
	}
}

func TestValidateCredentials(t *testing.T) {
	cases := []struct {
		user, pass string
		bad        []string
	}{
		{"alice", "s3cret-pass", nil},
		{"a.l+i-c_e@x", "password", nil},
		{"", "password", []string{"username"}},
		{"bad name", "password", []string{"username"}},
		{"alice", "short", []string{"password"}},
		{"alice", "12345678901", []string{"password"}},
		{string(make([]rune, 151)), "", []string{"username", "password"}},
	}
	for _, tc := range cases {
		err := domain.ValidateCredentials(tc.user, tc.pass)
		if tc.bad == nil {
			if err != nil {
				t.Errorf("ValidateCredentials(%q) = %v; want nil", tc.user, err)
			}
			continue
		}
		var de *domain.Error
		if !errors.As(err, &de) {
			t.Errorf("ValidateCredentials(%q, %q) = %v; want field errors %v", tc.user, tc.pass, err, tc.bad)
			continue
		}
		for _, f := range tc.bad {
			if len(de.Fields[f]) == 0 {
				t.Errorf("ValidateCredentials(%q, %q): no %s error in %v", tc.user, tc.pass, f, de.Fields)
			}
		}
	}
}

func TestRegistryUpcastsMessageSentV1(t *testing.T) {
	r := domain.NewRegistry()
	v1 := []byte(`{"conversation_id":4,"message_id":9,"sender":2,"receivers":[1],"text":"old","attachment":"ab12","attachment_type":"video"}`)
	e, err := r.Decode(domain.TypeMessageSent, 1, v1)
	if err != nil {
		t.Fatal(err)
	}
	m := e.(domain.MessageSent)
	if m.SenderID != 2 || m.MessageID != 9 || m.Video == nil || m.Video.Key != "ab12" || m.Picture != nil || m.Text != "old" {
		t.Errorf("upcast = %+v", m)
	}
	typ, b, err := r.Encode(m)
	if err != nil || typ != domain.TypeMessageSent {
		t.Fatal(typ, err)
	}
	again, err := r.Decode(typ, r.Version(typ), b)
	if err != nil || again.(domain.MessageSent).SenderID != 2 {
		t.Errorf("round trip at current version = %+v, %v", again, err)
	}
	if _, err := r.Decode(domain.TypeMessageSent, 3, b); err == nil {
		t.Error("decoding a future version succeeded; want an error")
	}
	if _, err := r.Decode("chat.nope", 1, b); err == nil {
		t.Error("decoding an unknown type succeeded")
	}
}

// The wire names and payloads of the log are a contract with every log
// written so far: a registered event keeps its name and fields.
func TestRegistrationAbandonedWireForm(t *testing.T) {
	r := domain.NewRegistry()
	typ, b, err := r.Encode(domain.RegistrationAbandoned{UserID: 12, Username: "alice"})
	if err != nil || typ != "chat.registration_abandoned" || string(b) != `{"user_id":12,"username":"alice"}` || r.Version(typ) != 1 {
		t.Fatalf("encode = %s %s (version %d), %v; want chat.registration_abandoned {\"user_id\":12,\"username\":\"alice\"} at version 1", typ, b, r.Version(typ), err)
	}
	e, err := r.Decode(typ, 1, b)
	if err != nil || e != (domain.RegistrationAbandoned{UserID: 12, Username: "alice"}) {
		t.Errorf("decode = %+v, %v", e, err)
	}
	var u domain.User
	u.Apply(e)
	if u.Exists() {
		t.Error("an abandoned registration makes a user")
	}
}

func TestNormalizeUsername(t *testing.T) {
	for _, tt := range []struct{ in, clean, key string }{
		{"Alice", "Alice", "alice"},
		{"ａｌｉｃｅ", "alice", "alice"},
		{"ＡＬＩＣＥ", "ALICE", "alice"},
		{"Straße", "Straße", "strasse"},
		{"ﬁle", "file", "file"},
		{"Zoë", "Zoë", "zoë"},
	} {
		if got := domain.CleanUsername(tt.in); got != tt.clean {
			t.Errorf("CleanUsername(%q) = %q; want %q", tt.in, got, tt.clean)
		}
		if got := domain.NormalizeUsername(tt.in); got != tt.key {
			t.Errorf("NormalizeUsername(%q) = %q; want %q", tt.in, got, tt.key)
		}
	}
}

func mustLeave(t *testing.T, c *domain.Conversation, user int64) []domain.Event {
	t.Helper()
	evs, err := c.Leave(user)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestAdmins(t *testing.T) {
	c := &domain.Conversation{}
	c.Apply(domain.ConversationCreated{ConversationID: 1, Type: domain.Group, CreatedBy: 2,
		Members: []domain.Membership{{UserID: 2, MembershipID: 1}, {UserID: 3, MembershipID: 2}}})
	if !c.IsAdmin(2) || c.IsAdmin(3) {
		t.Fatalf("after creation: admins %v; want the creator only", c.Admins())
	}
	c.Apply(domain.AdminPromoted{ConversationID: 1, UserID: 3, By: 2})
	c.Apply(domain.MemberLeft{ConversationID: 1, UserID: 2, MembershipID: 1})
	if got := c.Admins(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("after the creator left: admins %v; want [3]", got)
	}
	c.Apply(domain.MemberJoined{ConversationID: 1, UserID: 2, MembershipID: 3})
	if c.IsAdmin(2) {
		t.Fatal("a member who left and came back is an admin again")
	}
	name := "renamed"
	c.Apply(domain.ConversationUpdated{ConversationID: 1, UpdatedBy: 3, Name: &name})
	if c.Name == nil || *c.Name != name {
		t.Fatalf("name %v after an update; want %q", c.Name, name)
	}
}
