package commands_test

import (
	"context"
	"testing"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
)

// A join by a member answers with the position of the event that made the
// membership, whichever process answers, so that the caller can wait for
// the read model to show it: the first join may still be on its way there.
func TestJoinByAMemberAnswersTheMembershipsPosition(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	seq := &ids{}
	newProc := func() *commands.Service {
		return commands.New(commands.Config{Store: mem, IDs: seq, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}})
	}
	a, b := newProc(), newProc()
	room := newGroup(t, a)
	u2 := commands.Actor{UserID: 2}
	first, err := a.JoinChatroom(ctx, u2, room, "")
	if err != nil || !first.New || first.Position.IsZero() {
		t.Fatalf("first join = %+v, %v; want a new membership with its position", first, err)
	}
	if _, err := a.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "after the join"}}); err != nil {
		t.Fatal(err)
	}
	for name, proc := range map[string]*commands.Service{"the process that appended it": a, "a process that loads the room": b} {
		again, err := proc.JoinChatroom(ctx, u2, room, "")
		if err != nil || again.New || again.MembershipID != first.MembershipID || again.Position != first.Position {
			t.Errorf("join again through %s = %+v, %v; want membership %d at %v, not new",
				name, again, err, first.MembershipID, first.Position)
		}
	}
	// The creator's membership is the room's first event.
	creator, err := b.JoinChatroom(ctx, commands.Actor{UserID: 1}, room, "")
	if want := mem.streams[domain.ConversationStream(room)][0].Position; err != nil || creator.Position != want {
		t.Errorf("creator joins = %+v, %v; want the creation's position %v", creator, err, want)
	}
}

// A state restored from a snapshot answers a membership older than the
// snapshot with a position past the membership's event: the snapshot's.
func TestJoinByAMemberFromASnapshot(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	snaps := &memSnapshots{}
	room, last := snapshotRoom(t, mem, snaps, 150) // user 3 joined at revision 3; a snapshot at 99
	cold := commands.New(commands.Config{Store: mem, IDs: &ids{next: map[commands.IDKind]int64{commands.MessageIDs: last}},
		Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Snapshots: snaps, SnapshotEvery: 100})
	j, err := cold.JoinChatroom(ctx, commands.Actor{UserID: 3}, room, "")
	events := mem.streams[domain.ConversationStream(room)]
	if want := events[99].Position; err != nil || j.New || j.Position != want {
		t.Fatalf("join by a member before the snapshot = %+v, %v; want the snapshot event's position %v", j, err, want)
	}
}
