package chatd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/projections"
)

const adminToken = "operators-only-secret"

func withAdmin(c *chatd.Config) { c.AdminToken = adminToken }

// forget forgets u's id through the operators' endpoint.
func (s *testServer) forget(t testing.TB, id int64) {
	t.Helper()
	r := s.do("DELETE", fmt.Sprintf("/admin/users/%d/", id), adminToken, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("forget user %d: %d %s", id, r.Status, r.Body)
	}
	s.caughtUp()
}

// roomMessages lists a room's messages as u.
func (s *testServer) roomMessages(t testing.TB, u user, room int64) map[int64]messageJSON {
	t.Helper()
	r := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/?limit=200", room), u.Access, nil)
	wantStatus(t, r, http.StatusOK)
	out := map[int64]messageJSON{}
	for _, m := range decodeMessages(t, r) {
		out[m.ID] = m
	}
	return out
}

// rawLog reads the whole log as stored, under the shredder.
func rawLog(t testing.TB, s *testServer) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for from := eventstore.Start; ; {
		batch, err := s.Shredder().Inner().ReadAll(context.Background(), from, 500)
		if err != nil {
			t.Fatalf("read the raw log: %v", err)
		}
		out = append(out, batch...)
		if len(batch) < 500 {
			return out
		}
		from = batch[len(batch)-1].Position
	}
}

// rebuildAndVerify rebuilds the read model from the log and checks that a
// second rebuild into scratch tables matches it row for row.
func rebuildAndVerify(t testing.TB, s *testServer) {
	t.Helper()
	ctx := context.Background()
	chat := projections.NewChat(domain.NewRegistry())
	if _, err := projections.Rebuild(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{BatchSize: 7}); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	verify(t, s)
}

// verify checks that the live read model equals a fresh rebuild.
func verify(t testing.TB, s *testServer) {
	t.Helper()
	s.caughtUp()
	chat := projections.NewChat(domain.NewRegistry())
	diffs, _, err := projections.Verify(context.Background(), s.Pool(), s.Store(), chat, projections.RebuildOptions{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, d := range diffs {
		if !d.Equal {
			t.Errorf("table %s differs from a fresh rebuild: live %d rows, rebuilt %d; only live %v; only rebuilt %v",
				d.Table, d.LiveRows, d.RebuiltRows, d.OnlyLive, d.OnlyRebuilt)
		}
	}
}

// TestForget forgets a user: everywhere their messages, name and room
// names read as placeholders (lists, audit, WebSocket resume, a rebuild),
// the log holds none of it in plaintext, their files are gone unless
// someone else's message uses the same file, they cannot log in, and
// everyone else's data is intact.
func TestForget(t *testing.T) {
	t.Parallel()
	var cfg chatd.Config
	s := startServer(t, withAdmin, capture(&cfg))
	gone, other := s.newUser(), s.newUser()
	shared := s.room(other, gone)
	r := s.do("POST", "/create-chatroom/", gone.Access, map[string]any{"type": "group", "name": "gone's secret club",
		"description": "what gone wrote", "members": []int64{other.ID}})
	wantStatus(t, r, http.StatusCreated)
	var own struct{ ID int64 }
	r.JSON(t, &own)

	before := s.send(other, shared, "other's first words") // resume point
	var beforeMsg messageJSON
	for _, m := range s.roomMessages(t, other, shared) {
		beforeMsg = m
	}
	secret := s.send(gone, shared, "gone's secret words")
	onlyGone := s.sendMultipart(t, gone, shared, "a picture only gone sent", []formPart{{name: "attachment_picture", file: "a.png", value: string(pngBytes(t, 3))}})
	same := pngBytes(t, 4)
	goneShared := s.sendMultipart(t, gone, shared, "", []formPart{{name: "attachment_picture", file: "b.png", value: string(same)}})
	otherShared := s.sendMultipart(t, other, shared, "the same picture", []formPart{{name: "attachment_picture", file: "b.png", value: string(same)}})
	ownMsg := s.send(gone, own.ID, "gone in their own room")
	after := s.send(other, shared, "other's last words")
	onlyPath := mediaPath(t, s, *onlyGone.AttachmentPicture)
	sharedPath := mediaPath(t, s, *otherShared.AttachmentPicture)
	s.caughtUp()
	verify(t, s)

	// The log holds no personal data in plaintext, anyone's.
	plain := []string{"gone's secret words", "a picture only gone sent", "gone's secret club", "what gone wrote",
		gone.Name, other.Name, "other's first words", onlyPath[7:71]}
	checkRaw := func(t *testing.T) {
		for _, e := range rawLog(t, s) {
			if strings.Contains(e.Stream, gone.Name) || strings.Contains(e.Stream, other.Name) {
				t.Errorf("the raw log names a stream after a user: %s", e.Stream)
			}
			for _, p := range plain {
				if bytes.Contains(e.Data, []byte(p)) {
					t.Errorf("the raw log holds %q in plaintext: %s %s", p, e.Type, e.Data)
				}
			}
		}
	}
	checkRaw(t)

	// admin token
	func() {
		for _, c := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {"wrong", http.StatusForbidden}} {
			r := s.do("DELETE", fmt.Sprintf("/admin/users/%d/", gone.ID), c.token, nil)
			if r.Status != c.want {
				t.Errorf("forget with token %q = %d %s; want %d", c.token, r.Status, r.Body, c.want)
			}
		}
		// A user's own token is no admin token.
		wantStatus(t, s.do("DELETE", fmt.Sprintf("/admin/users/%d/", gone.ID), other.Access, nil), http.StatusForbidden)
		wantStatus(t, s.do("DELETE", "/admin/users/999999/", adminToken, nil), http.StatusNotFound)
	}()

	s.forget(t, gone.ID)

	checkMessages := func(t *testing.T) {
		t.Helper()
		msgs := s.roomMessages(t, other, shared)
		for _, id := range []int64{secret, onlyGone.ID, goneShared.ID} {
			m := msgs[id]
			if m.Text != domain.ForgottenText || m.AttachmentPicture != nil || m.AttachmentVideo != nil {
				t.Errorf("forgotten user's message %d = %+v; want text %q and no attachments", id, m, domain.ForgottenText)
			}
		}
		if m := msgs[before]; m.Text != "other's first words" {
			t.Errorf("other's message = %+v; want it intact", m)
		}
		if m := msgs[otherShared.ID]; m.Text != "the same picture" || m.AttachmentPicture == nil {
			t.Errorf("other's picture message = %+v; want it intact", m)
		}
		if m := msgs[after]; m.Text != "other's last words" {
			t.Errorf("other's message = %+v; want it intact", m)
		}
		if m := s.roomMessages(t, other, own.ID)[ownMsg]; m.Text != domain.ForgottenText {
			t.Errorf("message in the forgotten user's room = %+v; want %q", m, domain.ForgottenText)
		}
		var rooms []chatroomJSON
		s.do("GET", "/list-chatrooms/", other.Access, nil).JSON(t, &rooms)
		for _, c := range rooms {
			if c.ID == own.ID && (c.Name == nil || *c.Name != domain.ForgottenText || c.Description == nil || *c.Description != domain.ForgottenText) {
				t.Errorf("room the forgotten user named = %+v; want name and description %q", c, domain.ForgottenText)
			}
			if c.ID == shared && (c.Name == nil || *c.Name != "room") {
				t.Errorf("other's room = %+v; want its name intact", c)
			}
		}
		var mine []messageJSON
		s.do("GET", "/list-messages/?limit=200", other.Access, nil).JSON(t, &mine)
		for _, m := range mine {
			if m.Sender == gone.ID && m.Text != domain.ForgottenText {
				t.Errorf("list-messages shows %+v; want %q", m, domain.ForgottenText)
			}
		}
	}
	checkMessages(t)

	// audit
	func() {
		var events []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		s.do("GET", fmt.Sprintf("/audit/conversations/%d/", shared), other.Access, nil).JSON(t, &events)
		found := 0
		for _, e := range events {
			if e.Type != domain.TypeMessageSent {
				continue
			}
			var d struct {
				SenderID int64           `json:"sender_id"`
				Text     string          `json:"text"`
				Picture  json.RawMessage `json:"attachment_picture"`
			}
			_ = json.Unmarshal(e.Data, &d)
			if d.SenderID == gone.ID {
				found++
				if d.Text != domain.ForgottenText || (len(d.Picture) > 0 && string(d.Picture) != "null") {
					t.Errorf("audit shows the forgotten user's message as %s", e.Data)
				}
			} else if strings.Contains(string(e.Data), "sealed") || d.Text == domain.ForgottenText {
				t.Errorf("audit shows someone else's message as %s", e.Data)
			}
		}
		if found != 3 {
			t.Errorf("audit lists %d messages of the forgotten user; want 3", found)
		}
	}()

	// websocket resume
	func() {
		ws := s.wsConnect(other, shared, "since="+url.QueryEscape(beforeMsg.Position))
		for _, want := range []struct {
			id   int64
			text string
		}{{secret, domain.ForgottenText}, {onlyGone.ID, domain.ForgottenText}, {goneShared.ID, domain.ForgottenText},
			{otherShared.ID, "the same picture"}, {after, "other's last words"}} {
			f := ws.expectMessage(t, want.id)
			if f.Text != want.text {
				t.Errorf("resumed message %d reads %q; want %q", want.id, f.Text, want.text)
			}
		}
	}()

	// files
	func() {
		if r := s.do("GET", onlyPath, other.Access, nil); r.Status != http.StatusNotFound {
			t.Errorf("the forgotten user's own file = %d; want 404", r.Status)
		}
		if _, err := os.Stat(cfg.DataDir + "/media/" + onlyPath[7:9] + "/" + onlyPath[9:11] + "/" + onlyPath[7:71]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the forgotten user's own file is still stored (%v)", err)
		}
		if r := s.do("GET", sharedPath, other.Access, nil); r.Status != http.StatusOK {
			t.Errorf("a file another message uses = %d; want 200", r.Status)
		}
	}()

	// no login
	func() {
		wantUnauthorized(t, s.do("GET", "/list-chatrooms/", gone.Access, nil))
		r := s.do("POST", "/auth/login/", "", map[string]string{"username": gone.Name, "password": gone.Password})
		wantStatus(t, r, http.StatusUnauthorized)
		// The name stays taken: nobody may pass for the forgotten user.
		r = s.do("POST", "/auth/register/", "", map[string]string{"username": gone.Name, "password": "another-pass-1"})
		wantStatus(t, r, http.StatusBadRequest)
		var row struct{ Username string }
		if err := s.Pool().QueryRow(context.Background(), `SELECT username FROM users WHERE id = $1`, gone.ID).Scan(&row.Username); err != nil || row.Username != domain.ForgottenUsername {
			t.Errorf("read model username = %q (%v); want %q", row.Username, err, domain.ForgottenUsername)
		}
	}()

	s.forget(t, gone.ID) // again: no error

	// verify then rebuild
	func() {
		verify(t, s)
		rebuildAndVerify(t, s)
		checkMessages(t)
	}()
	checkRaw(t)
}

// TestForgetLegacyPlaintextLog: events written before personal data was
// sealed (appended here straight to the store under the shredder, in
// their old shapes) still read; forgetting their user renders
// placeholders for them too, live and after a rebuild.
func TestForgetLegacyPlaintextLog(t *testing.T) {
	t.Parallel()
	s := startServer(t, withAdmin)
	other := s.newUser()
	ctx := context.Background()
	raw := s.Shredder().Inner()
	const legacyID, roomID, msgID = 900001, 900002, 900003
	name := fmt.Sprintf("legacy%d", time.Now().UnixNano()%1e6)
	hash, _ := bcrypt.GenerateFromPassword([]byte("legacy-pass-1"), 4)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	md := func(v int) []byte {
		if v == 0 {
			return []byte(`{"time":"` + at + `"}`)
		}
		return []byte(fmt.Sprintf(`{"time":%q,"v":%d}`, at, v))
	}
	ev := func(typ string, v int, data string) eventstore.EventData {
		return eventstore.EventData{ID: uuid.New(), Type: typ, Data: []byte(data), Metadata: md(v)}
	}
	appendRaw := func(stream string, e eventstore.EventData) {
		if _, err := raw.Append(ctx, stream, eventstore.Any(), e); err != nil {
			t.Fatalf("append to %s: %v", stream, err)
		}
	}
	appendRaw(domain.UsernameStream(name), ev(domain.TypeUsernameReserved, 1, fmt.Sprintf(`{"username":%q,"user_id":%d}`, name, legacyID)))
	// Version 1: the password hash in the log.
	appendRaw(domain.UserStream(legacyID), ev(domain.TypeUserRegistered, 0, fmt.Sprintf(`{"user_id":%d,"username":%q,"password_hash":%q}`, legacyID, name, hash)))
	appendRaw(domain.ConversationStream(roomID), ev(domain.TypeConversationCreated, 1, fmt.Sprintf(
		`{"conversation_id":%d,"type":"group","name":"legacy room","description":null,"created_by":%d,"members":[{"user_id":%d,"membership_id":900004},{"user_id":%d,"membership_id":900005}]}`,
		roomID, legacyID, legacyID, other.ID)))
	// Version 1 of a message: "sender", not "sender_id".
	appendRaw(domain.ConversationStream(roomID), ev(domain.TypeMessageSent, 0, fmt.Sprintf(
		`{"conversation_id":%d,"message_id":%d,"sender":%d,"receivers":[%d],"text":"legacy plaintext"}`, roomID, msgID, legacyID, other.ID)))
	s.caughtUp()

	if m := s.roomMessages(t, other, roomID)[msgID]; m.Text != "legacy plaintext" {
		t.Fatalf("legacy message = %+v; want its plaintext", m)
	}
	legacy := s.login(user{Name: name, Password: "legacy-pass-1"})
	if legacy.ID != legacyID {
		t.Fatalf("legacy login as user %d; want %d", legacy.ID, legacyID)
	}
	// The legacy reservation stream (named in the clear) still holds the name.
	r := s.do("POST", "/auth/register/", "", map[string]string{"username": name, "password": "another-pass-1"})
	wantStatus(t, r, http.StatusBadRequest)
	mine := s.send(legacy, roomID, "sealed from now on")
	verify(t, s)

	s.forget(t, legacyID)
	msgs := s.roomMessages(t, other, roomID)
	for _, id := range []int64{msgID, mine} {
		if m := msgs[id]; m.Text != domain.ForgottenText {
			t.Errorf("message %d of the forgotten legacy user = %+v; want %q", id, m, domain.ForgottenText)
		}
	}
	var events []struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	s.do("GET", fmt.Sprintf("/audit/conversations/%d/", roomID), other.Access, nil).JSON(t, &events)
	for _, e := range events {
		if bytes.Contains(e.Data, []byte("legacy plaintext")) || bytes.Contains(e.Data, []byte("legacy room")) {
			t.Errorf("audit shows %s", e.Data)
		}
	}
	r = s.do("POST", "/auth/login/", "", map[string]string{"username": name, "password": "legacy-pass-1"})
	wantStatus(t, r, http.StatusUnauthorized)
	rebuildAndVerify(t, s)
	if m := s.roomMessages(t, other, roomID)[msgID]; m.Text != domain.ForgottenText {
		t.Errorf("after a rebuild the legacy message = %+v; want %q", m, domain.ForgottenText)
	}
	// The rebuild moved no legacy password hash back.
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM credentials WHERE user_id = $1`, legacyID).Scan(&n); err != nil || n != 0 {
		t.Errorf("credentials of the forgotten legacy user: %d rows (%v); want none", n, err)
	}
}

// TestForgetKeyStoredBeforeAppend: a user's key is committed before the
// first append sealed with it. A crash between the two (the hook fails the
// append, as a kill -9 would end it) leaves a key without events, and
// nothing is lost: the retried registration uses that key, and a new
// process (an empty key cache) reads everything.
func TestForgetKeyStoredBeforeAppend(t *testing.T) {
	t.Parallel()
	cfg := chatd.Config{
		Addr: "127.0.0.1:0", DatabaseURL: pgtest.NewDatabase(t), DataDir: t.TempDir(),
		JWTKeyFile: t.TempDir() + "/jwt.pem", BcryptCost: 4, LeaderRetry: 100 * time.Millisecond,
	}
	useEventStore(t, &cfg)
	errCrash := errors.New("crash after the key was stored")
	var crashed atomic.Bool
	var committed atomic.Int64
	var a *testServer
	cfg.Hooks.KeyCreated = func(ctx context.Context, u int64) error {
		if crashed.Load() {
			return nil
		}
		// Another connection sees the key: it is committed.
		var n int64
		if err := a.Pool().QueryRow(ctx, `SELECT count(*) FROM user_keys WHERE user_id = $1 AND key IS NOT NULL`, u).Scan(&n); err == nil {
			committed.Store(n)
		}
		crashed.Store(true)
		return errCrash
	}
	a = startWith(t, cfg)
	u := user{Name: fmt.Sprintf("crash%d", time.Now().UnixNano()%1e6), Password: "correct-horse-1"}
	r := a.do("POST", "/auth/register/", "", map[string]string{"username": u.Name, "password": u.Password})
	wantStatus(t, r, http.StatusInternalServerError)
	if committed.Load() != 1 {
		t.Fatalf("the key was not committed before the append")
	}
	keysBefore := userKeyRows(t, a)
	// The registration is retried and completes, with the key stored.
	r = a.do("POST", "/auth/register/", "", map[string]string{"username": u.Name, "password": u.Password})
	wantStatus(t, r, http.StatusCreated)
	a.caughtUp()
	u = a.login(u)
	other := a.newUser()
	room := a.room(u, other)
	id := a.send(u, room, "written after the crash")
	a.stop()

	b := startWith(t, cfg)
	b.caughtUp()
	u = b.login(u)
	if m := b.roomMessages(t, u, room)[id]; m.Text != "written after the crash" {
		t.Fatalf("after a restart the message reads %+v", m)
	}
	rebuildAndVerify(t, b)
	if len(keysBefore) != 2 { // the key and the stream secret
		t.Errorf("%d keys after the crash; want the one made before it", len(keysBefore))
	}
}
