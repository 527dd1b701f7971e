package shred_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/shred"
)

// memStore is a minimal in-memory event store: one log, streams by name.
// It checks no expected revision: these tests are about payloads.
type memStore struct {
	mu  sync.Mutex
	log []eventstore.RecordedEvent
}

func (m *memStore) Append(_ context.Context, stream string, _ eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res eventstore.AppendResult
	for _, e := range events {
		rev := uint64(0)
		for _, r := range m.log {
			if r.Stream == stream {
				rev = r.Revision + 1
			}
		}
		pos := eventstore.Position{Commit: uint64(len(m.log) + 1), Prepare: uint64(len(m.log) + 1)}
		m.log = append(m.log, eventstore.RecordedEvent{ID: e.ID, Stream: stream, Revision: rev, Position: pos,
			Type: e.Type, Data: bytes.Clone(e.Data), Metadata: e.Metadata})
		res = eventstore.AppendResult{Revision: rev, Position: pos}
	}
	return res, nil
}

func (m *memStore) ReadStream(_ context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []eventstore.RecordedEvent
	if dir == eventstore.Backwards {
		for i := len(m.log) - 1; i >= 0; i-- {
			if r := m.log[i]; r.Stream == stream && r.Revision <= from && len(out) < count {
				out = append(out, r)
			}
		}
	} else {
		for _, r := range m.log {
			if r.Stream == stream && r.Revision >= from && len(out) < count {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return nil, eventstore.ErrStreamNotFound
	}
	return out, nil
}

func (m *memStore) ReadAll(_ context.Context, from eventstore.Position, count int) ([]eventstore.RecordedEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []eventstore.RecordedEvent
	for _, r := range m.log {
		if from.Less(r.Position) && len(out) < count {
			out = append(out, r)
		}
	}
	return out, nil
}

// SubscribeAll delivers what the log holds, once, then returns.
func (m *memStore) SubscribeAll(ctx context.Context, from eventstore.Position, handle func(context.Context, eventstore.Delivery) error) error {
	evs, _ := m.ReadAll(ctx, from, 1<<30)
	return handle(ctx, eventstore.Delivery{Events: evs, CaughtUp: true})
}

func (m *memStore) Head(context.Context) (eventstore.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.log) == 0 {
		return eventstore.Start, nil
	}
	return m.log[len(m.log)-1].Position, nil
}

func (m *memStore) Ping(context.Context) error { return nil }

// memKeys is an in-memory key store that counts its loads.
type memKeys struct {
	mu    sync.Mutex
	keys  map[int64]shred.KeyState
	loads int
}

func newKeys() *memKeys { return &memKeys{keys: map[int64]shred.KeyState{}} }

func (k *memKeys) Load(_ context.Context, users []int64) (map[int64]shred.KeyState, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.loads++
	out := map[int64]shred.KeyState{}
	for _, u := range users {
		if st, ok := k.keys[u]; ok {
			out[u] = st
		}
	}
	return out, nil
}

func (k *memKeys) Create(_ context.Context, user int64, key []byte) (shred.KeyState, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[user]; !ok {
		k.keys[user] = shred.KeyState{Key: key}
	}
	return k.keys[user], nil
}

func (k *memKeys) forget(user int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[user] = shred.KeyState{Forgotten: true}
}

func event(t testing.TB, e domain.Event) eventstore.EventData {
	t.Helper()
	typ, data, err := domain.NewRegistry().Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.EventData{ID: uuid.New(), Type: typ, Data: data, Metadata: []byte(`{}`)}
}

func sent(sender int64, text string, pic *domain.Attachment) domain.MessageSent {
	return domain.MessageSent{ConversationID: 1, MessageID: 1, SenderID: sender, Receivers: []int64{2}, Text: text, Picture: pic}
}

// decode decodes a payload of the current version.
func decode(t testing.TB, e eventstore.RecordedEvent) domain.Event {
	t.Helper()
	return decodeV(t, e, domain.NewRegistry().Version(e.Type))
}

// decodeV decodes a payload of version v.
func decodeV(t testing.TB, e eventstore.RecordedEvent, v int) domain.Event {
	t.Helper()
	ev, err := domain.NewRegistry().Decode(e.Type, v, e.Data)
	if err != nil {
		t.Fatalf("decode %s %s: %v", e.Type, e.Data, err)
	}
	return ev
}

func setup() (*memStore, *memKeys, *shred.Store) {
	inner, keys := &memStore{}, newKeys()
	return inner, keys, shred.New(inner, keys, shred.Options{})
}

// Sealed on append, opened on every read path; the raw log holds no
// plaintext and the sealed values are objects.
func TestSealAndOpen(t *testing.T) {
	ctx := context.Background()
	inner, keys, s := setup()
	pic := &domain.Attachment{Key: "abc123", ContentType: "image/png", Size: 3}
	if _, err := s.Append(ctx, "conversation-1", eventstore.Any(), event(t, sent(7, "hello there", pic))); err != nil {
		t.Fatal(err)
	}
	raw := inner.log[0].Data
	if bytes.Contains(raw, []byte("hello there")) || bytes.Contains(raw, []byte("abc123")) {
		t.Fatalf("raw payload holds plaintext: %s", raw)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	for _, f := range []string{"text", "attachment_picture"} {
		if !bytes.HasPrefix(m[f], []byte(`{"sealed":"v1:`)) {
			t.Errorf("raw %s = %s; want a sealed object", f, m[f])
		}
	}
	if string(m["sender_id"]) != "7" {
		t.Errorf("raw sender_id = %s; want it in the clear", m["sender_id"])
	}
	if len(keys.keys) != 1 {
		t.Fatalf("%d keys; want 1", len(keys.keys))
	}
	want := sent(7, "hello there", pic)
	check := func(name string, evs []eventstore.RecordedEvent) {
		t.Helper()
		if len(evs) != 1 {
			t.Fatalf("%s: %d events", name, len(evs))
		}
		got := decode(t, evs[0]).(domain.MessageSent)
		if got.Text != want.Text || *got.Picture != *want.Picture {
			t.Errorf("%s reads %+v; want %+v", name, got, want)
		}
	}
	evs, err := s.ReadStream(ctx, "conversation-1", eventstore.Forwards, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	check("ReadStream", evs)
	evs, _ = s.ReadAll(ctx, eventstore.Start, 10)
	check("ReadAll", evs)
	_ = s.SubscribeAll(ctx, eventstore.Start, func(_ context.Context, d eventstore.Delivery) error {
		check("SubscribeAll", d.Events)
		return nil
	})
}

// Forgotten: sealed and legacy plaintext fields read as the placeholders,
// other users' data is intact, and the forgotten user can write no more.
func TestForgottenPlaceholders(t *testing.T) {
	ctx := context.Background()
	inner, keys, s := setup()
	name := "secret room"
	for _, e := range []domain.Event{
		sent(7, "from seven", &domain.Attachment{Key: "k7"}),
		sent(8, "from eight", nil),
		domain.ConversationCreated{ConversationID: 1, Type: "group", Name: &name, CreatedBy: 7},
		domain.UserRegistered{UserID: 7, Username: "seven", PasswordSet: true},
	} {
		if _, err := s.Append(ctx, "s", eventstore.Any(), event(t, e)); err != nil {
			t.Fatal(err)
		}
	}
	// A legacy plaintext event of 7 (version 1 shape), straight into the log.
	legacy := eventstore.EventData{ID: uuid.New(), Type: domain.TypeMessageSent, Metadata: []byte(`{}`),
		Data: []byte(`{"conversation_id":1,"message_id":9,"sender":7,"receivers":[8],"text":"legacy words","attachment":"http://x/media/k/"}`)}
	if _, err := inner.Append(ctx, "s", eventstore.Any(), legacy); err != nil {
		t.Fatal(err)
	}
	evs, _ := s.ReadAll(ctx, eventstore.Start, 10)
	if got := decodeV(t, evs[4], 1).(domain.MessageSent); got.Text != "legacy words" || got.SenderID != 7 || got.Picture == nil {
		t.Fatalf("legacy event before forgetting reads %+v", got)
	}

	keys.forget(7)
	s.Invalidate(7)
	evs, _ = s.ReadAll(ctx, eventstore.Start, 10)
	if got := decode(t, evs[0]).(domain.MessageSent); got.Text != domain.ForgottenText || got.Picture != nil {
		t.Errorf("forgotten message reads %+v", got)
	}
	if got := decode(t, evs[1]).(domain.MessageSent); got.Text != "from eight" {
		t.Errorf("another user's message reads %+v", got)
	}
	if got := decode(t, evs[2]).(domain.ConversationCreated); got.Name == nil || *got.Name != domain.ForgottenText || got.Description != nil {
		t.Errorf("forgotten room reads %+v; want name %q and description still null", got, domain.ForgottenText)
	}
	if got := decode(t, evs[3]).(domain.UserRegistered); got.Username != domain.ForgottenUsername {
		t.Errorf("forgotten user reads %+v", got)
	}
	if got := decodeV(t, evs[4], 1).(domain.MessageSent); got.Text != domain.ForgottenText || got.Picture != nil || got.Video != nil {
		t.Errorf("forgotten legacy message reads %+v", got)
	}
	_, err := s.Append(ctx, "s", eventstore.Any(), event(t, sent(7, "too late", nil)))
	if !errors.Is(err, shred.ErrForgotten) {
		t.Errorf("append as a forgotten user = %v; want ErrForgotten", err)
	}
}

// A sealed value is bound to its owner, event type and member: copied
// into another user's event it does not open.
func TestSealedValueBoundToOwner(t *testing.T) {
	ctx := context.Background()
	inner, _, s := setup()
	for _, u := range []int64{7, 8} {
		if _, err := s.Append(ctx, "s", eventstore.Any(), event(t, sent(u, fmt.Sprint("from ", u), nil))); err != nil {
			t.Fatal(err)
		}
	}
	var seven, eight map[string]json.RawMessage
	_ = json.Unmarshal(inner.log[0].Data, &seven)
	_ = json.Unmarshal(inner.log[1].Data, &eight)
	eight["text"] = seven["text"]
	inner.log[1].Data, _ = json.Marshal(eight)
	if _, err := s.ReadAll(ctx, eventstore.Start, 10); !errors.Is(err, shred.ErrCorrupt) {
		t.Fatalf("reading a moved sealed value = %v; want ErrCorrupt", err)
	}
}

// Plaintext that looks like a seal is not one: only an object whose one
// member is "sealed" is, and an attachment object never is.
func TestLegacyValuesNotMistakenForSealed(t *testing.T) {
	ctx := context.Background()
	inner, _, s := setup()
	data := `{"conversation_id":1,"message_id":1,"sender_id":5,"receivers":[],"text":"{\"sealed\":\"v1:AAAA\"}","attachment_picture":{"key":"sealed","content_type":"image/png","size":1}}`
	if _, err := inner.Append(ctx, "s", eventstore.Any(), eventstore.EventData{ID: uuid.New(), Type: domain.TypeMessageSent, Data: []byte(data), Metadata: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ReadAll(ctx, eventstore.Start, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, evs[0]).(domain.MessageSent)
	if got.Text != `{"sealed":"v1:AAAA"}` || got.Picture == nil || got.Picture.Key != "sealed" {
		t.Errorf("legacy values read %+v", got)
	}
}

// A key made by another process after this one cached "no key" is found:
// the cache is not believed for a sealed field. A sealed field whose key
// is missing altogether (a lost key table) fails the read instead of
// passing for forgotten.
func TestKeyMadeElsewhereAndKeyMissing(t *testing.T) {
	ctx := context.Background()
	inner, keys := &memStore{}, newKeys()
	reader := shred.New(inner, keys, shred.Options{})
	writer := shred.New(inner, keys, shred.Options{})
	legacy := eventstore.EventData{ID: uuid.New(), Type: domain.TypeMessageSent, Metadata: []byte(`{}`),
		Data: []byte(`{"conversation_id":1,"message_id":1,"sender_id":7,"receivers":[],"text":"old"}`)}
	_, _ = inner.Append(ctx, "s", eventstore.Any(), legacy)
	if _, err := reader.ReadAll(ctx, eventstore.Start, 10); err != nil { // caches "7 has no key"
		t.Fatal(err)
	}
	if _, err := writer.Append(ctx, "s", eventstore.Any(), event(t, sent(7, "new", nil))); err != nil {
		t.Fatal(err)
	}
	evs, err := reader.ReadAll(ctx, eventstore.Start, 10)
	if err != nil {
		t.Fatalf("reading a key made elsewhere: %v", err)
	}
	if got := decode(t, evs[1]).(domain.MessageSent); got.Text != "new" {
		t.Errorf("reads %+v", got)
	}
	keys.mu.Lock()
	delete(keys.keys, 7)
	keys.mu.Unlock()
	fresh := shred.New(inner, keys, shred.Options{})
	if _, err := fresh.ReadAll(ctx, eventstore.Start, 10); !errors.Is(err, shred.ErrKeyMissing) {
		t.Errorf("reading with the key table lost = %v; want ErrKeyMissing", err)
	}
}

// The key is created before the append, and a failed append (the hook
// plays a crash) leaves it for the retry, which uses it.
func TestKeyCreatedBeforeAppend(t *testing.T) {
	ctx := context.Background()
	inner, keys := &memStore{}, newKeys()
	crash := errors.New("crash")
	fail := true
	s := shred.New(inner, keys, shred.Options{KeyCreated: func(context.Context, int64) error {
		if len(keys.keys) != 1 {
			t.Errorf("the hook ran before the key was stored")
		}
		if fail {
			fail = false
			return crash
		}
		return nil
	}})
	if _, err := s.Append(ctx, "s", eventstore.Any(), event(t, sent(7, "a", nil))); !errors.Is(err, crash) {
		t.Fatalf("append = %v; want the crash", err)
	}
	if len(inner.log) != 0 || len(keys.keys) != 1 {
		t.Fatalf("after the crash: %d events, %d keys; want 0 and 1", len(inner.log), len(keys.keys))
	}
	key := keys.keys[7].Key
	if _, err := s.Append(ctx, "s", eventstore.Any(), event(t, sent(7, "a", nil))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys.keys[7].Key, key) {
		t.Errorf("the retry made a new key")
	}
	evs, err := shred.New(inner, keys, shred.Options{}).ReadAll(ctx, eventstore.Start, 10)
	if err != nil || decode(t, evs[0]).(domain.MessageSent).Text != "a" {
		t.Errorf("a fresh process reads %v, %v", evs, err)
	}
}

// Events without personal data, and null personal fields, pass untouched
// and need no key.
func TestNoPersonalDataNeedsNoKey(t *testing.T) {
	ctx := context.Background()
	inner, keys, s := setup()
	joined := event(t, domain.MemberJoined{ConversationID: 1, UserID: 7, MembershipID: 3})
	room := event(t, domain.ConversationCreated{ConversationID: 1, Type: "chat", CreatedBy: 7})
	if _, err := s.Append(ctx, "s", eventstore.Any(), joined, room); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(inner.log[0].Data, joined.Data) || !bytes.Equal(inner.log[1].Data, room.Data) {
		t.Errorf("payloads changed: %s, %s", inner.log[0].Data, inner.log[1].Data)
	}
	if len(keys.keys) != 0 {
		t.Errorf("%d keys made; want none", len(keys.keys))
	}
}

// With a stream key, username streams are stored under a keyed hash; a
// legacy stream named in the clear keeps serving its name.
func TestUsernameStreamsHashed(t *testing.T) {
	ctx := context.Background()
	inner, keys := &memStore{}, newKeys()
	s := shred.New(inner, keys, shred.Options{StreamKey: []byte("0123456789abcdef0123456789abcdef")})
	reserve := func(name string, id int64) eventstore.EventData {
		return event(t, domain.UsernameReserved{Username: name, UserID: id})
	}
	if _, err := s.Append(ctx, domain.UsernameStream("alice"), eventstore.NoStream(), reserve("alice", 1)); err != nil {
		t.Fatal(err)
	}
	if st := inner.log[0].Stream; strings.Contains(st, "alice") || !strings.HasPrefix(st, "uname-") {
		t.Errorf("stored under %q; want a hashed name", st)
	}
	evs, err := s.ReadStream(ctx, domain.UsernameStream("alice"), eventstore.Forwards, 0, 10)
	if err != nil || len(evs) != 1 || decode(t, evs[0]).(domain.UsernameReserved).Username != "alice" {
		t.Fatalf("ReadStream(username-alice) = %v, %v", evs, err)
	}
	// A legacy stream, named in the clear before names were hashed.
	if _, err := inner.Append(ctx, domain.UsernameStream("bob"), eventstore.NoStream(), reserve("bob", 2)); err != nil {
		t.Fatal(err)
	}
	var wrong *eventstore.WrongExpectedVersionError
	if _, err := s.Append(ctx, domain.UsernameStream("bob"), eventstore.NoStream(), reserve("bob", 3)); !errors.As(err, &wrong) || wrong.Actual != 0 {
		t.Fatalf("reserving a legacy name = %v; want a wrong expected version at 0", err)
	}
	if _, err := s.Append(ctx, domain.UsernameStream("bob"), eventstore.Exact(0), reserve("bob", 4)); err != nil {
		t.Fatal(err)
	}
	evs, err = s.ReadStream(ctx, domain.UsernameStream("bob"), eventstore.Forwards, 0, 10)
	if err != nil || len(evs) != 2 || evs[1].Stream != domain.UsernameStream("bob") {
		t.Fatalf("the legacy stream = %v, %v; want both reservations in it", evs, err)
	}
	// Another key names the stream differently.
	other := shred.New(inner, keys, shred.Options{StreamKey: []byte("another key, another name........")})
	if _, err := other.ReadStream(ctx, domain.UsernameStream("alice"), eventstore.Forwards, 0, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("read under another key = %v; want not found", err)
	}
}
