package chatd_test

// Delivery receipts (API.md section 8): a message is delivered to a
// receiver when a socket of theirs got its frame or a list showed it;
// receipts are recorded in bulk, reach the room as delivered frames, are
// replayed on resume, and survive a rebuild.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/projections"
)

// expectLive reads frames up to the next one that is not a presence
// notice (presence frames come whenever users connect) and checks its type.
func (c *wsConn) expectLive(t testing.TB, typ string) wsFrame {
	t.Helper()
	for {
		f := c.next(t)
		if f.Type == "presence" {
			continue
		}
		if f.Type != typ {
			t.Fatalf("got frame %s; want a %q frame", f.Raw, typ)
		}
		return f
	}
}

// expectDelivered reads the next frame (past presence notices) and checks
// that it is the delivery of ids to user.
func (c *wsConn) expectDelivered(t testing.TB, room int64, user int64, ids ...int64) wsFrame {
	t.Helper()
	f := c.expectLive(t, "delivered")
	wantObject(t, f.Raw, []string{"type", "conversation", "user", "message_ids", "position"})
	if f.Conversation != room || f.User != user || !slices.Equal(f.MessageIDs, ids) {
		t.Fatalf("delivered frame %s; want user %d, messages %v of room %d", f.Raw, user, ids, room)
	}
	return f
}

// message returns message id as u's room list shows it.
func (s *testServer) listed(t testing.TB, u user, room, id int64) messageJSON {
	t.Helper()
	msgs, _ := s.conversationMessages(t, u, room, "")
	for _, m := range msgs {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %d is not in room %d's list", id, room)
	return messageJSON{}
}

func TestDeliveryReceipts(t *testing.T) {
	t.Parallel()
	s := startLiveServer(t)
	alice, bob, carol, dave := s.newUser(), s.newUser(), s.newUser(), s.newUser()
	room := s.room(alice, bob, carol, dave)
	aliceWS, bobWS, daveWS := s.wsConnect(alice, room, ""), s.wsConnect(bob, room, ""), s.wsConnect(dave, room, "")

	// A socket's frame delivers: bob's and dave's sockets get m1.
	sent := s.sendJSON(t, alice, map[string]any{"conversation_id": room, "text": "m1"})
	if sent.DeliveredTo == nil || len(sent.DeliveredTo) != 0 {
		t.Fatalf("send answer delivered_to = %v; want []", sent.DeliveredTo)
	}
	m1 := sent.ID
	var m1Pos string
	for _, so := range []*wsConn{aliceWS, bobWS, daveWS} {
		f := so.expectLive(t, "message")
		var v messageJSON
		if err := json.Unmarshal(f.Raw, &v); err != nil || v.ID != m1 || v.DeliveredTo == nil {
			t.Fatalf("message frame %s; want m1 with delivered_to", f.Raw)
		}
		m1Pos = f.Position
	}
	// Both receipts are noted within one flush interval, most likely in one
	// flush: one frame per receiver, in receiver order within a flush.
	got := map[int64][]int64{}
	for range 2 {
		f := aliceWS.expectLive(t, "delivered")
		wantObject(t, f.Raw, []string{"type", "conversation", "user", "message_ids", "position"})
		got[f.User] = f.MessageIDs
	}
	if !slices.Equal(got[bob.ID], []int64{m1}) || !slices.Equal(got[dave.ID], []int64{m1}) {
		t.Fatalf("delivered frames %v; want m1 to bob and dave", got)
	}
	s.caughtUp()
	if m := s.listed(t, alice, room, m1); !slices.Equal(m.DeliveredTo, []int64{bob.ID, dave.ID}) {
		t.Fatalf("delivered_to = %v; want bob and dave", m.DeliveredTo)
	}

	// A list delivers: carol has no socket, and lists the room.
	if m := s.listed(t, carol, room, m1); slices.Contains(m.DeliveredTo, carol.ID) {
		t.Fatalf("carol's own listing shows delivered_to %v; want it as before the listing", m.DeliveredTo)
	}
	aliceWS.expectDelivered(t, room, carol.ID, m1)
	s.caughtUp()
	if m := s.listed(t, alice, room, m1); !slices.Equal(m.DeliveredTo, []int64{bob.ID, carol.ID, dave.ID}) {
		t.Fatalf("delivered_to = %v; want bob, carol and dave", m.DeliveredTo)
	}
	// So does the list of all the user's messages.
	m2 := s.send(alice, room, "m2")
	aliceWS.expectLive(t, "message")
	for range 2 {
		aliceWS.expectLive(t, "delivered")
	}
	wantStatus(t, s.do("GET", "/list-messages/", carol.Access, nil), http.StatusOK)
	aliceWS.expectDelivered(t, room, carol.ID, m2)

	// Idempotent: carol lists again, then a message reaches dave's socket.
	// A flush records receivers in id order, so a second receipt of carol's
	// would be in the log before dave's frame comes.
	s.caughtUp()
	s.listed(t, carol, room, m1)
	m3 := s.send(alice, room, "m3")
	aliceWS.expectLive(t, "message")
	deliveredTo := map[int64]bool{}
	for len(deliveredTo) < 2 {
		f := aliceWS.expectLive(t, "delivered")
		if !slices.Equal(f.MessageIDs, []int64{m3}) {
			t.Fatalf("delivered frame %s; want m3 only", f.Raw)
		}
		deliveredTo[f.User] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := s.Store().ReadStream(ctx, domain.DeliveryStream(room, carol.ID), eventstore.Forwards, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("carol's delivery stream has %d events; want 2 (m1, m2)", len(evs))
	}

	// Read implies delivered: eve joins (no socket), receives m4, reads it.
	eve := s.newUser()
	wantStatus(t, s.do("POST", "/join-chatroom/", eve.Access, map[string]any{"chatroom_id": room}), http.StatusCreated)
	aliceWS.expectLive(t, "member_joined")
	m4 := s.send(alice, room, "m4")
	wantStatus(t, s.do("POST", "/read-message/", eve.Access, map[string]any{"conversation_id": room, "message_ids": []int64{m4}}), http.StatusOK)
	if m := s.listed(t, alice, room, m4); !slices.Equal(m.ReadBy, []int64{eve.ID}) || !slices.Contains(m.DeliveredTo, eve.ID) {
		t.Fatalf("m4 read_by %v, delivered_to %v; want eve in both", m.ReadBy, m.DeliveredTo)
	}

	// Resume replays delivered frames: from m1's position, bob's new
	// socket hears the receipts of m1 after m1.
	so := s.wsConnect(bob, room, "since="+m1Pos)
	var users []int64
	for len(users) < 3 {
		f := so.nextLive(t)
		if f.Type == "delivered" && slices.Equal(f.MessageIDs, []int64{m1}) {
			users = append(users, f.User)
		}
	}
	slices.Sort(users)
	if !slices.Equal(users, []int64{bob.ID, carol.ID, dave.ID}) {
		t.Fatalf("resumed receipts of m1 for %v; want bob, carol and dave", users)
	}
	// And the audit stream of the room holds none of them: they live in
	// streams of their own, which the chatctl audit command reads.
	r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/", room), alice.Access, nil)
	var events []struct{ Type string }
	r.JSON(t, &events)
	for _, e := range events {
		if e.Type == domain.TypeMessagesDelivered {
			t.Fatalf("room audit holds %s; want receipts in their own streams", e.Type)
		}
	}
}

// nextLive reads the next frame that is not a presence notice.
func (c *wsConn) nextLive(t testing.TB) wsFrame {
	t.Helper()
	for {
		if f := c.next(t); f.Type != "presence" {
			return f
		}
	}
}

// TestRoomsRebuildVerify runs a mixed workload of sends, receipts, reads
// and group administration, then verifies the read model against a rebuild
// of the log (chatctl projections verify) and rebuilds it.
func TestRoomsRebuildVerify(t *testing.T) {
	t.Parallel()
	s := startLiveServer(t)
	alice, bob, carol, dave := s.newUser(), s.newUser(), s.newUser(), s.newUser()
	room := s.room(alice, bob, carol)
	bobWS := s.wsConnect(bob, room, "")
	var ids []int64
	var toBob []int64
	for i := range 6 {
		from := []user{alice, bob, carol}[i%3]
		ids = append(ids, s.send(from, room, fmt.Sprintf("m%d", i)))
		if from != bob {
			toBob = append(toBob, ids[i])
		}
	}
	// Bob's socket delivers what it got: wait for those receipts, so that
	// none is recorded after the lists below.
	var delivered []int64
	for len(delivered) < len(toBob) {
		if f := bobWS.nextLive(t); f.Type == "delivered" && f.User == bob.ID {
			delivered = append(delivered, f.MessageIDs...)
		}
	}
	wantStatus(t, s.do("PATCH", fmt.Sprintf("/chatrooms/%d/", room), alice.Access, map[string]any{"name": "renamed"}), http.StatusOK)
	wantStatus(t, s.do("POST", fmt.Sprintf("/chatrooms/%d/members/", room), alice.Access, map[string]any{"user": dave.ID}), http.StatusCreated)
	wantStatus(t, s.do("POST", fmt.Sprintf("/chatrooms/%d/admins/", room), alice.Access, map[string]any{"user": carol.ID}), http.StatusOK)
	wantStatus(t, s.do("POST", "/read-message/", carol.Access, map[string]any{"conversation_id": room, "message_ids": ids[:2]}), http.StatusOK)
	s.listed(t, dave, room, ids[0])
	wantStatus(t, s.do("DELETE", fmt.Sprintf("/chatrooms/%d/members/%d/", room, bob.ID), carol.Access, nil), http.StatusOK)
	wantStatus(t, s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), alice.Access, nil), http.StatusOK)
	wantStatus(t, s.do("DELETE", fmt.Sprintf("/leave-chatroom/%d/", room), carol.Access, nil), http.StatusOK)
	s.caughtUp()
	before := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), dave.Access, nil)
	rooms := s.do("GET", "/list-chatrooms/", dave.Access, nil)
	var listed []chatroomJSON
	rooms.JSON(t, &listed)
	if len(listed) != 1 || !slices.Equal(listed[0].Admins, []int64{dave.ID}) {
		t.Fatalf("after the admins left: %s; want dave admin", rooms.Body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	chat := projections.NewChat(domain.NewRegistry())
	diffs, _, err := projections.Verify(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{BatchSize: 7})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, d := range diffs {
		if !d.Equal {
			t.Fatalf("table %s differs after a rebuild: live only %v, rebuilt only %v", d.Table, d.OnlyLive, d.OnlyRebuilt)
		}
	}
	if _, err := projections.Rebuild(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{BatchSize: 5}); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	// Dave joined after the messages: his lists record no receipts.
	if after := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), dave.Access, nil); after.text() != before.text() {
		t.Fatalf("messages after rebuild:\n got  %s\n want %s", after.Body, before.Body)
	}
	if again := s.do("GET", "/list-chatrooms/", dave.Access, nil); again.text() != rooms.text() {
		t.Fatalf("chatrooms after rebuild:\n got  %s\n want %s", again.Body, rooms.Body)
	}
}
