package commands_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
)

type memSnapshots struct {
	mu    sync.Mutex
	snaps map[string]commands.Snapshot
	saves int
}

func (m *memSnapshots) LoadSnapshot(_ context.Context, stream string) (commands.Snapshot, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snaps[stream]
	return s, ok, nil
}

func (m *memSnapshots) SaveSnapshot(_ context.Context, stream string, s commands.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snaps == nil {
		m.snaps = map[string]commands.Snapshot{}
	}
	if old, ok := m.snaps[stream]; !ok || old.Revision < s.Revision {
		m.snaps[stream] = s
	}
	m.saves++
	return nil
}

func (m *memSnapshots) get(stream string) (commands.Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snaps[stream]
	return s, ok
}

// readCountingStore counts the events the commands read.
type readCountingStore struct {
	*memStore
	mu   sync.Mutex
	read int
}

func (c *readCountingStore) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	evs, err := c.memStore.ReadStream(ctx, stream, dir, from, count)
	c.mu.Lock()
	c.read += len(evs)
	c.mu.Unlock()
	return evs, err
}

func (c *readCountingStore) takeRead() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.read
	c.read = 0
	return n
}

// snapshotRoom makes a room where user 1 created it, user 2 joined and left
// and user 3 joined, then user 1 sends n messages through a service that
// snapshots every 100 events. It returns the room and the last message id.
func snapshotRoom(t *testing.T, store commands.EventStore, snaps *memSnapshots, n int) (int64, int64) {
	t.Helper()
	ctx := context.Background()
	svc := commands.New(commands.Config{Store: store, IDs: &ids{}, Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{},
		Snapshots: snaps, SnapshotEvery: 100})
	created, err := svc.CreateChatroom(ctx, commands.Actor{UserID: 1}, commands.CreateChatroom{Type: domain.Group})
	if err != nil {
		t.Fatal(err)
	}
	room := created.Conversation.ID
	for _, step := range []func() error{
		func() error { _, err := svc.JoinChatroom(ctx, commands.Actor{UserID: 2}, room, ""); return err },
		func() error { _, err := svc.LeaveChatroom(ctx, commands.Actor{UserID: 2}, room); return err },
		func() error { _, err := svc.JoinChatroom(ctx, commands.Actor{UserID: 3}, room, ""); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	var last int64
	for range n {
		sent, err := svc.SendMessage(ctx, commands.Actor{UserID: 1}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "m"}})
		if err != nil {
			t.Fatal(err)
		}
		last = sent.Message.MessageID
	}
	return room, last
}

func TestSnapshotsAreTakenAndLoaded(t *testing.T) {
	ctx := context.Background()
	mem := newMemStore()
	snaps := &memSnapshots{}
	room, last := snapshotRoom(t, mem, snaps, 250) // revisions 0..253
	stream := domain.ConversationStream(room)
	snap, ok := snaps.get(stream)
	if !ok {
		t.Fatal("no snapshot after 254 events")
	}
	// Taken when the stream crossed 200 events: revision 199, the state then.
	if snap.Revision != 199 || snap.EventID != mem.streams[stream][199].ID || snap.Version != domain.ConversationSnapshotVersion {
		t.Fatalf("snapshot at revision %d (event %s, version %d); want 199, %s, %d",
			snap.Revision, snap.EventID, snap.Version, mem.streams[stream][199].ID, domain.ConversationSnapshotVersion)
	}
	var cs domain.ConversationSnapshot
	if err := json.Unmarshal(snap.State, &cs); err != nil {
		t.Fatal(err)
	}
	var at199 domain.MessageSent
	if err := json.Unmarshal(mem.streams[stream][199].Data, &at199); err != nil {
		t.Fatal(err)
	}
	if cs.LastMessageID != at199.MessageID || len(cs.Members) != 2 {
		t.Errorf("snapshot state %+v; want last message %d and members 1 and 3", cs, at199.MessageID)
	}

	// A new process, nothing cached: it reads the snapshot's event and the
	// 54 after it, not 254 events.
	store := &readCountingStore{memStore: mem}
	cold := commands.New(commands.Config{Store: store, IDs: &ids{next: map[commands.IDKind]int64{commands.MessageIDs: last}},
		Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Snapshots: snaps, SnapshotEvery: 100})
	sent, err := cold.SendMessage(ctx, commands.Actor{UserID: 3}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "from 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := store.takeRead(); got != 55 {
		t.Errorf("cold send read %d events; want 55 (from the snapshot's revision 199 to 253)", got)
	}
	if sent.Message.MessageID <= last {
		t.Errorf("message id %d; want past %d", sent.Message.MessageID, last)
	}
	// The restored state knows who left before the snapshot.
	if _, err := cold.SendMessage(ctx, commands.Actor{UserID: 2}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "x"}}); domain.KindOf(err) != domain.KindForbidden {
		t.Errorf("a user who left before the snapshot sends: %v; want forbidden", err)
	}
}

func TestSnapshotOfAnotherHistoryIsIgnored(t *testing.T) {
	for name, spoil := range map[string]func(*commands.Snapshot){
		"another event":     func(s *commands.Snapshot) { s.EventID = uuid.New() },
		"past the stream":   func(s *commands.Snapshot) { s.Revision = 10_000 },
		"another version":   func(s *commands.Snapshot) { s.Version = domain.ConversationSnapshotVersion + 1 },
		"undecodable state": func(s *commands.Snapshot) { s.State = json.RawMessage(`{"members": 3}`) },
	} {
		t.Run(name, func(t *testing.T) {
			mem := newMemStore()
			snaps := &memSnapshots{}
			room, _ := snapshotRoom(t, mem, snaps, 120)
			stream := domain.ConversationStream(room)
			snap, ok := snaps.get(stream)
			if !ok {
				t.Fatal("no snapshot")
			}
			// A state in which user 2 is a member, which the log denies.
			var cs domain.ConversationSnapshot
			if err := json.Unmarshal(snap.State, &cs); err != nil {
				t.Fatal(err)
			}
			cs.Members = append(cs.Members, [2]int64{2, 99})
			snap.State, _ = json.Marshal(cs)
			spoil(&snap)
			snaps.snaps[stream] = snap

			store := &readCountingStore{memStore: mem}
			cold := commands.New(commands.Config{Store: store, IDs: &ids{next: map[commands.IDKind]int64{commands.MessageIDs: 1000}},
				Lookups: noLookups{}, Registry: domain.NewRegistry(), Credentials: discardCredentials{}, Snapshots: snaps, SnapshotEvery: 100})
			_, err := cold.SendMessage(context.Background(), commands.Actor{UserID: 2}, commands.SendMessage{ConversationID: room, Content: domain.MessageContent{Text: "x"}})
			if domain.KindOf(err) != domain.KindForbidden {
				t.Errorf("send by a user who left: %v; want forbidden (decided on the log, not the snapshot)", err)
			}
			if got, want := store.takeRead(), len(mem.streams[stream]); got < want {
				t.Errorf("read %d events; want the whole stream (%d)", got, want)
			}
		})
	}
}
