package chatd_test

// A message's life after it is sent (API.md section 8): edits and their
// history, deletes and tombstones, reactions, replies, their frames, the
// audit stream and a rebuild.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/evchat/evchat/domain"
	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/projections"
	"github.com/evchat/evchat/readmodel"
)

// lifeJSON is a message with the fields of its life.
type lifeJSON struct {
	ID                int64              `json:"id"`
	Conversation      int64              `json:"conversation"`
	Sender            int64              `json:"sender"`
	Text              *string            `json:"text"`
	AttachmentPicture *string            `json:"attachment_picture"`
	AttachmentVideo   *string            `json:"attachment_video"`
	CreatedAt         string             `json:"created_at"`
	EditedAt          *string            `json:"edited_at"`
	DeletedAt         *string            `json:"deleted_at"`
	Reactions         map[string][]int64 `json:"reactions"`
	ReplyTo           *int64             `json:"reply_to"`
	Position          string             `json:"position"`
}

func decodeLife(t testing.TB, r response) lifeJSON {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	decodeMessage(t, r.Body) // every key of a message, no other
	var m lifeJSON
	r.JSON(t, &m)
	if m.Reactions == nil {
		t.Fatalf("message %s: reactions must be an object, never null", r.Body)
	}
	return m
}

func msgPath(id int64, rest string) string { return fmt.Sprintf("/messages/%d/%s", id, rest) }

func reactionPath(id int64, emoji string) string {
	return msgPath(id, "reactions/"+url.PathEscape(emoji)+"/")
}

func TestLifecycleEdit(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, stranger := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)
	first := s.send(a, room, "first")
	id := s.send(a, room, "hello")
	last := s.send(b, room, "last")

	m := decodeLife(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": "hello, edited"}))
	if m.ID != id || m.Text == nil || *m.Text != "hello, edited" || m.EditedAt == nil || m.DeletedAt != nil {
		t.Fatalf("edited message = %+v; want id %d, the new text, edited_at set", m, id)
	}
	second := decodeLife(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": "hello again"}))
	if *second.Text != "hello again" || *second.EditedAt < *m.EditedAt {
		t.Fatalf("second edit = %+v", second)
	}
	// In place: the list keeps its order and shows the new text.
	msgs := decodeMessages(t, s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil))
	if len(msgs) != 3 || msgs[0].ID != first || msgs[1].ID != id || msgs[2].ID != last || msgs[1].Text != "hello again" {
		t.Fatalf("list after edits = %+v", msgs)
	}
	got := decodeLife(t, s.do("GET", msgPath(id, ""), b.Access, nil))
	if *got.Text != "hello again" || got.EditedAt == nil || got.Position != m.Position {
		t.Fatalf("GET after edits = %+v; want the last text at the message's own position", got)
	}

	t.Run("history", func(t *testing.T) {
		r := s.do("GET", msgPath(id, "history/"), b.Access, nil)
		wantStatus(t, r, http.StatusOK)
		var h []struct {
			Text     *string `json:"text"`
			EditedAt string  `json:"edited_at"`
			By       int64   `json:"by"`
		}
		r.JSON(t, &h)
		if len(h) != 3 || *h[0].Text != "hello" || *h[1].Text != "hello, edited" || *h[2].Text != "hello again" {
			t.Fatalf("history = %s; want the three texts oldest first", r.Body)
		}
		if h[0].EditedAt != got.CreatedAt || h[0].By != a.ID || h[1].By != a.ID || h[2].EditedAt != *got.EditedAt {
			t.Fatalf("history = %s; want the send time first, then the edits' times, all by %d", r.Body, a.ID)
		}
		wantStatus(t, s.do("GET", msgPath(id, "history/"), stranger.Access, nil), http.StatusForbidden)
		wantStatus(t, s.do("GET", msgPath(999999, "history/"), a.Access, nil), http.StatusNotFound)
	})
	t.Run("refusals", func(t *testing.T) {
		wantStatus(t, s.do("PATCH", msgPath(id, ""), b.Access, map[string]string{"text": "not mine"}), http.StatusForbidden)
		wantStatus(t, s.do("PATCH", msgPath(id, ""), stranger.Access, map[string]string{"text": "x"}), http.StatusForbidden)
		wantStatus(t, s.do("PATCH", msgPath(999999, ""), a.Access, map[string]string{"text": "x"}), http.StatusNotFound)
		wantStatus(t, s.do("GET", msgPath(id, ""), stranger.Access, nil), http.StatusForbidden)
		wantStatus(t, s.do("GET", msgPath(999999, ""), a.Access, nil), http.StatusNotFound)
		wantFields(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": "a\x00b"}), map[string][]string{"text": {domain.NullCharactersMessage}})
		wantFields(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": ""}), map[string][]string{"text": nil})
		wantFields(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{}), map[string][]string{"text": nil})
		long := string(bytes.Repeat([]byte("x"), 64<<10+1))
		wantFields(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": long}), map[string][]string{"text": nil})
	})
}

func TestLifecycleDelete(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	s := startServer(t, func(c *chatd.Config) { c.DataDir = dataDir })
	admin, b, stranger := s.newUser(), s.newUser(), s.newUser()
	room := s.room(admin, b) // its creator is its admin
	pic := s.sendMultipart(t, b, room, "look", []formPart{{name: "attachment_picture", file: "p.png", value: string(pngBytes(t, 3))}})
	kept := s.sendMultipart(t, b, room, "keep", []formPart{{name: "attachment_picture", file: "q.png", value: string(pngBytes(t, 4))}})
	picPath := mediaPath(t, s, *pic.AttachmentPicture)
	wantStatus(t, s.do("GET", picPath, admin.Access, nil), http.StatusOK)
	own := s.send(admin, room, "the admin's")

	wantStatus(t, s.do("DELETE", msgPath(own, ""), b.Access, nil), http.StatusForbidden)           // not the sender, not an admin
	wantStatus(t, s.do("DELETE", msgPath(pic.ID, ""), stranger.Access, nil), http.StatusForbidden) // not a member
	wantStatus(t, s.do("DELETE", msgPath(999999, ""), b.Access, nil), http.StatusNotFound)

	r := s.do("DELETE", msgPath(pic.ID, ""), admin.Access, nil) // an admin deletes b's message
	wantStatus(t, r, http.StatusOK)
	if got := r.Map(t); !reflect.DeepEqual(got, map[string]any{"message": "Message deleted"}) {
		t.Fatalf("delete answered %s", r.Body)
	}
	m := decodeLife(t, s.do("GET", msgPath(pic.ID, ""), b.Access, nil))
	if m.Text != nil || m.AttachmentPicture != nil || m.AttachmentVideo != nil || m.DeletedAt == nil {
		t.Fatalf("tombstone = %+v; want text and attachments null, deleted_at set", m)
	}
	msgs := decodeMessages(t, s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), b.Access, nil))
	if len(msgs) != 3 || msgs[0].ID != pic.ID {
		t.Fatalf("list after the delete = %+v; want the tombstone in its place", msgs)
	}
	wantStatus(t, s.do("GET", picPath, admin.Access, nil), http.StatusNotFound)
	wantStatus(t, s.do("GET", picPath, b.Access, nil), http.StatusNotFound)
	wantStatus(t, s.do("GET", mediaPath(t, s, *kept.AttachmentPicture), b.Access, nil), http.StatusOK)

	// Idempotent: a second delete answers the same and appends nothing.
	before := len(auditEvents(t, s, room, admin))
	wantStatus(t, s.do("DELETE", msgPath(pic.ID, ""), b.Access, nil), http.StatusOK)
	if after := len(auditEvents(t, s, room, admin)); after != before {
		t.Fatalf("a second delete appended %d events", after-before)
	}
	wantStatus(t, s.do("PATCH", msgPath(pic.ID, ""), b.Access, map[string]string{"text": "x"}), http.StatusBadRequest)
	wantStatus(t, s.do("PUT", reactionPath(pic.ID, "👍"), b.Access, nil), http.StatusBadRequest)
	wantStatus(t, s.do("DELETE", reactionPath(pic.ID, "👍"), b.Access, nil), http.StatusBadRequest)
	var h []struct{ Text *string }
	s.do("GET", msgPath(pic.ID, "history/"), b.Access, nil).JSON(t, &h)
	if len(h) != 1 || h[0].Text != nil {
		t.Fatalf("history of a deleted message = %+v; want one version without its text", h)
	}
	wantStatus(t, s.do("DELETE", msgPath(own, ""), admin.Access, nil), http.StatusOK) // its sender

	// media gc collects the deleted message's file and keeps the other.
	storage := &chathttp.FileStorage{Dir: dataDir + "/media"}
	var removed []string
	err := storage.Collect(context.Background(), time.Now().Add(time.Hour), readmodel.New(s.Pool()).NamedAttachments, false,
		func(c chathttp.Collected) { removed = append(removed, c.Path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || storedFiles(t, dataDir) != 1 {
		t.Fatalf("media gc removed %v and left %d files; want the deleted message's file only", removed, storedFiles(t, dataDir))
	}
	wantStatus(t, s.do("GET", mediaPath(t, s, *kept.AttachmentPicture), b.Access, nil), http.StatusOK)
}

func TestLifecycleReactions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, stranger := s.newUser(), s.newUser(), s.newUser()
	room := s.room(a, b)
	id := s.send(a, room, "react to me")

	m := decodeLife(t, s.do("PUT", reactionPath(id, "👍"), b.Access, nil))
	if !reflect.DeepEqual(m.Reactions, map[string][]int64{"👍": {b.ID}}) {
		t.Fatalf("reactions = %v", m.Reactions)
	}
	m = decodeLife(t, s.do("PUT", reactionPath(id, "👍"), a.Access, nil))
	want := map[string][]int64{"👍": {min(a.ID, b.ID), max(a.ID, b.ID)}}
	if !reflect.DeepEqual(m.Reactions, want) {
		t.Fatalf("reactions = %v; want %v", m.Reactions, want)
	}
	before := len(auditEvents(t, s, room, a))
	if m = decodeLife(t, s.do("PUT", reactionPath(id, "👍"), a.Access, nil)); !reflect.DeepEqual(m.Reactions, want) {
		t.Fatalf("after a repeated PUT reactions = %v; want %v", m.Reactions, want)
	}
	if after := len(auditEvents(t, s, room, a)); after != before {
		t.Fatalf("a repeated PUT appended %d events", after-before)
	}
	m = decodeLife(t, s.do("DELETE", reactionPath(id, "👍"), b.Access, nil))
	if !reflect.DeepEqual(m.Reactions, map[string][]int64{"👍": {a.ID}}) {
		t.Fatalf("after b's DELETE reactions = %v", m.Reactions)
	}
	decodeLife(t, s.do("DELETE", reactionPath(id, "👍"), b.Access, nil)) // idempotent
	m = decodeLife(t, s.do("DELETE", reactionPath(id, "👍"), a.Access, nil))
	if len(m.Reactions) != 0 {
		t.Fatalf("after every DELETE reactions = %v; want {}", m.Reactions)
	}
	// Multi-rune emoji arrive whole through the URL.
	for _, e := range []string{"👨‍👩‍👧", "🇫🇷", "1️⃣", "👍🏽"} {
		if m = decodeLife(t, s.do("PUT", reactionPath(id, e), b.Access, nil)); len(m.Reactions[e]) != 1 {
			t.Fatalf("PUT %q: reactions = %v", e, m.Reactions)
		}
	}

	t.Run("refusals", func(t *testing.T) {
		for _, bad := range []string{"ab", "👍👍", "x", "%"} {
			wantFields(t, s.do("PUT", reactionPath(id, bad), b.Access, nil), map[string][]string{"emoji": nil})
		}
		wantStatus(t, s.do("PUT", reactionPath(id, "👍"), stranger.Access, nil), http.StatusForbidden)
		wantStatus(t, s.do("DELETE", reactionPath(id, "👍"), stranger.Access, nil), http.StatusForbidden)
		wantStatus(t, s.do("PUT", reactionPath(999999, "👍"), b.Access, nil), http.StatusNotFound)
	})

	t.Run("at most 20 distinct emoji, also when racing", func(t *testing.T) {
		target := s.send(a, room, "crowded")
		// 25 distinct emoji at once: the room's revision serialises them,
		// so exactly 20 land whatever the interleaving.
		var wg sync.WaitGroup
		statuses := make([]int, 25)
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.tryJSON("PUT", reactionPath(target, string(rune(0x1F600+i))), b.Access, nil)
				if err == nil {
					statuses[i] = r.Status
				}
			}()
		}
		wg.Wait()
		ok, refused := 0, 0
		for _, st := range statuses {
			switch st {
			case http.StatusOK:
				ok++
			case http.StatusBadRequest:
				refused++
			}
		}
		m := decodeLife(t, s.do("GET", msgPath(target, ""), a.Access, nil))
		if ok != domain.MaxReactions || refused != 5 || len(m.Reactions) != domain.MaxReactions {
			t.Fatalf("%d accepted, %d refused, %d emoji on the message; want 20, 5, 20 (statuses %v)", ok, refused, len(m.Reactions), statuses)
		}
		// An emoji already on it (whichever 20 landed) may still be added
		// by another user; a 21st may not.
		var onIt string
		for e := range m.Reactions {
			onIt = e
		}
		if m := decodeLife(t, s.do("PUT", reactionPath(target, onIt), a.Access, nil)); len(m.Reactions[onIt]) != 2 {
			t.Fatalf("%q after a's PUT: %v; want both users", onIt, m.Reactions[onIt])
		}
		wantFields(t, s.do("PUT", reactionPath(target, "🎉"), a.Access, nil), map[string][]string{"emoji": nil})
	})
}

func TestLifecycleReplies(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room, other := s.room(a, b), s.room(a)
	orig := s.send(a, room, "question")
	elsewhere := s.send(a, other, "elsewhere")

	r := s.do("POST", "/send-message/", b.Access, map[string]any{"conversation_id": room, "text": "answer", "reply_to": orig})
	wantStatus(t, r, http.StatusCreated)
	var reply lifeJSON
	r.JSON(t, &reply)
	decodeMessage(t, r.Body)
	if reply.ReplyTo == nil || *reply.ReplyTo != orig {
		t.Fatalf("reply = %s; want reply_to %d", r.Body, orig)
	}
	form := s.callMultipart(t, "/send-message/", b, []formPart{
		{name: "conversation_id", value: fmt.Sprint(room)}, {name: "reply_to", value: fmt.Sprint(orig)},
		{name: "attachment_picture", file: "p.png", value: string(pngBytes(t, 5))},
	})
	wantStatus(t, form, http.StatusCreated)
	var formReply lifeJSON
	form.JSON(t, &formReply)
	if formReply.ReplyTo == nil || *formReply.ReplyTo != orig {
		t.Fatalf("multipart reply = %s; want reply_to %d", form.Body, orig)
	}
	plain := decodeLife(t, s.do("GET", msgPath(orig, ""), a.Access, nil))
	if plain.ReplyTo != nil {
		t.Fatalf("a message that answers nothing has reply_to %d", *plain.ReplyTo)
	}
	var listed []lifeJSON
	s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), a.Access, nil).JSON(t, &listed)
	if len(listed) != 3 || listed[1].ReplyTo == nil || *listed[1].ReplyTo != orig || listed[0].ReplyTo != nil {
		t.Fatalf("list = %+v; want the replies' reply_to", listed)
	}

	for name, bad := range map[string]any{"another room's message": elsewhere, "an unknown id": 999999, "not an id": "x", "zero": 0} {
		t.Run(name, func(t *testing.T) {
			r := s.do("POST", "/send-message/", a.Access, map[string]any{"conversation_id": room, "text": "re", "reply_to": bad})
			wantFields(t, r, map[string][]string{"reply_to": nil})
		})
	}
	// A deleted message may still be answered: the reply keeps its context.
	wantStatus(t, s.do("DELETE", msgPath(orig, ""), a.Access, nil), http.StatusOK)
	wantStatus(t, s.do("POST", "/send-message/", b.Access, map[string]any{"conversation_id": room, "text": "re", "reply_to": orig}), http.StatusCreated)
}

func TestLifecycleFrames(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	sock := s.wsConnect(b, room, "")
	id := s.send(a, room, "framed")
	sent := sock.expectMessage(t, id)

	msgKeys := wsSorted("type", "id", "conversation", "sender", "receivers", "attachment_picture", "attachment_video",
		"text", "created_at", "updated_at", "read_by", "position", "edited_at", "deleted_at", "reactions", "reply_to", "delivered_to")
	reactionKeys := wsSorted("type", "conversation", "message", "user", "emoji", "added", "position")
	type frame struct {
		Type      string             `json:"type"`
		ID        int64              `json:"id"`
		Text      *string            `json:"text"`
		EditedAt  *string            `json:"edited_at"`
		DeletedAt *string            `json:"deleted_at"`
		Reactions map[string][]int64 `json:"reactions"`
		Message   int64              `json:"message"`
		User      int64              `json:"user"`
		Emoji     string             `json:"emoji"`
		Added     *bool              `json:"added"`
		Position  string             `json:"position"`
		// Tombstone: an edit frame resumed after the message's delete
		// shows the tombstone, not the text the delete took away.
		Tombstone bool `json:"-"`
	}
	check := func(t *testing.T, f wsFrame, want frame) {
		t.Helper()
		keys := msgKeys
		if want.Type == "reaction" {
			keys = reactionKeys
		}
		if got := wsKeys(t, f.Raw); !reflect.DeepEqual(got, keys) {
			t.Fatalf("%s frame keys = %v; want %v", want.Type, got, keys)
		}
		var got frame
		if err := json.Unmarshal(f.Raw, &got); err != nil {
			t.Fatal(err)
		}
		switch {
		case got.Type != want.Type,
			want.Type == "reaction" && (got.Message != want.Message || got.User != want.User || got.Emoji != want.Emoji || *got.Added != *want.Added),
			want.Type == "message_edited" && !want.Tombstone && (got.ID != want.ID || got.Text == nil || *got.Text != *want.Text || got.EditedAt == nil || got.DeletedAt != nil),
			want.Type == "message_edited" && want.Tombstone && (got.ID != want.ID || got.Text != nil || got.EditedAt == nil || got.DeletedAt == nil),
			want.Type == "message_deleted" && (got.ID != want.ID || got.Text != nil || got.DeletedAt == nil):
			t.Fatalf("frame %s; want %+v", f.Raw, want)
		}
	}
	text := "framed, edited"
	yes, no := true, false
	wantFrames := []frame{
		{Type: "message_edited", ID: id, Text: &text},
		{Type: "reaction", Message: id, User: a.ID, Emoji: "🎉", Added: &yes},
		{Type: "reaction", Message: id, User: a.ID, Emoji: "🎉", Added: &no},
		{Type: "message_deleted", ID: id},
	}
	// Each change is made once the frame of the one before has arrived:
	// an edit's frame shows the message as the read model has it when the
	// frame is rendered, which a delete made meanwhile would have turned
	// into the tombstone (as a resume shows it, below).
	changes := []func(t *testing.T){
		func(t *testing.T) {
			decodeLife(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": text}))
		},
		func(t *testing.T) { decodeLife(t, s.do("PUT", reactionPath(id, "🎉"), a.Access, nil)) },
		func(t *testing.T) { decodeLife(t, s.do("DELETE", reactionPath(id, "🎉"), a.Access, nil)) },
		func(t *testing.T) { wantStatus(t, s.do("DELETE", msgPath(id, ""), a.Access, nil), http.StatusOK) },
	}

	t.Run("live", func(t *testing.T) {
		last := wsPosition(t, sent)
		for i, w := range wantFrames {
			changes[i](t)
			f := sock.expect(t, w.Type)
			check(t, f, w)
			if p := wsPosition(t, f); !last.Less(p) {
				t.Fatalf("frame %s is not after the previous one", f.Raw)
			}
			last = wsPosition(t, f)
		}
	})
	t.Run("resumed", func(t *testing.T) {
		again := s.wsFor(t).wsConnect(b, room, "since="+sent.Position)
		for i, w := range wantFrames {
			w.Tombstone = i == 0
			check(t, again.expect(t, w.Type), w)
		}
	})
}

// auditEvents returns the room's audit stream as u sees it.
func auditEvents(t testing.TB, s *testServer, room int64, u user) []json.RawMessage {
	t.Helper()
	r := s.callJSON(t, "GET", fmt.Sprintf("/audit/conversations/%d/", room), u.Access, nil)
	wantStatus(t, r, http.StatusOK)
	var out []json.RawMessage
	r.JSON(t, &out)
	return out
}

// TestLifecycleAudit follows one message through send, two edits, two
// reactions and a delete in the room's audit stream. With
// CHAT_LIFECYCLE_AUDIT_OUT set it writes the stream there, pretty-printed.
func TestLifecycleAudit(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b := s.newUser(), s.newUser()
	room := s.room(a, b)
	id := s.send(a, room, "v1")
	decodeLife(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": "v2"}))
	decodeLife(t, s.do("PATCH", msgPath(id, ""), a.Access, map[string]string{"text": "v3"}))
	decodeLife(t, s.do("PUT", reactionPath(id, "👍"), b.Access, nil))
	decodeLife(t, s.do("PUT", reactionPath(id, "❤️"), a.Access, nil))
	wantStatus(t, s.do("DELETE", msgPath(id, ""), a.Access, nil), http.StatusOK)

	var events []struct {
		Type     string          `json:"type"`
		Data     json.RawMessage `json:"data"`
		Metadata struct {
			ActorID int64 `json:"actor_id"`
		} `json:"metadata"`
	}
	r := s.do("GET", fmt.Sprintf("/audit/conversations/%d/", room), b.Access, nil)
	wantStatus(t, r, http.StatusOK)
	r.JSON(t, &events)
	var types []string
	var actors []int64
	for _, e := range events {
		types, actors = append(types, e.Type), append(actors, e.Metadata.ActorID)
	}
	wantTypes := []string{domain.TypeConversationCreated, domain.TypeMessageSent, domain.TypeMessageEdited, domain.TypeMessageEdited,
		domain.TypeReactionAdded, domain.TypeReactionAdded, domain.TypeMessageDeleted}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Fatalf("audit types = %v; want %v", types, wantTypes)
	}
	if want := []int64{a.ID, a.ID, a.ID, a.ID, b.ID, a.ID, a.ID}; !reflect.DeepEqual(actors, want) {
		t.Fatalf("audit actors = %v; want %v", actors, want)
	}
	if out := os.Getenv("CHAT_LIFECYCLE_AUDIT_OUT"); out != "" {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, r.Body, "", "  "); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
		if err := os.WriteFile(out, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLifecycleRebuild: after a mixed workload of sends, replies, edits,
// deletes (with attachments) and reactions, a verification finds the live
// read model equal to one rebuilt from the log, and so does one after a
// rebuild is swapped in.
func TestLifecycleRebuild(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, b, c := s.newUser(), s.newUser(), s.newUser()
	room, other := s.room(a, b, c), s.room(b, a)
	var ids []int64
	for i := range 12 {
		u := []user{a, b, c}[i%3]
		body := map[string]any{"conversation_id": room, "text": fmt.Sprintf("m%d", i)}
		if i > 0 && i%4 == 0 {
			body["reply_to"] = ids[i-1]
		}
		r := s.do("POST", "/send-message/", u.Access, body)
		wantStatus(t, r, http.StatusCreated)
		var m struct{ ID int64 }
		r.JSON(t, &m)
		ids = append(ids, m.ID)
	}
	pic := s.sendMultipart(t, a, other, "pic", []formPart{{name: "attachment_picture", file: "p.png", value: string(pngBytes(t, 6))}})
	for i, id := range ids {
		u := []user{a, b, c}[i%3]
		switch i % 4 {
		case 0:
			decodeLife(t, s.do("PATCH", msgPath(id, ""), u.Access, map[string]string{"text": fmt.Sprintf("m%d edited", i)}))
		case 1:
			decodeLife(t, s.do("PUT", reactionPath(id, "👍"), a.Access, nil))
			decodeLife(t, s.do("PUT", reactionPath(id, "🇯🇵"), b.Access, nil))
		case 2:
			decodeLife(t, s.do("PUT", reactionPath(id, "😀"), c.Access, nil))
			decodeLife(t, s.do("DELETE", reactionPath(id, "😀"), c.Access, nil))
		case 3:
			decodeLife(t, s.do("PATCH", msgPath(id, ""), u.Access, map[string]string{"text": "before the delete"}))
			wantStatus(t, s.do("DELETE", msgPath(id, ""), a.Access, nil), http.StatusOK) // a is the admin
		}
	}
	wantStatus(t, s.do("DELETE", msgPath(pic.ID, ""), a.Access, nil), http.StatusOK)
	s.caughtUp()

	ctx := context.Background()
	chat := projections.NewChat(domain.NewRegistry())
	verify := func(t *testing.T) {
		t.Helper()
		diffs, _, err := projections.Verify(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{})
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		seen := map[string]bool{}
		for _, d := range diffs {
			seen[d.Table] = true
			if !d.Equal {
				t.Errorf("table %s differs from a fresh rebuild: live %d rows, rebuilt %d; only live %v; only rebuilt %v",
					d.Table, d.LiveRows, d.RebuiltRows, d.OnlyLive, d.OnlyRebuilt)
			}
		}
		if !seen["message_edits"] || !seen["reactions"] {
			t.Fatalf("verified tables %v; want message_edits and reactions among them", seen)
		}
	}
	before := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), a.Access, nil)
	wantStatus(t, before, http.StatusOK)
	verify(t)
	if _, err := projections.Rebuild(ctx, s.Pool(), s.Store(), chat, projections.RebuildOptions{BatchSize: 7}); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	verify(t)
	after := s.do("GET", fmt.Sprintf("/list-conversation-messages/%d/", room), a.Access, nil)
	if !bytes.Equal(before.Body, after.Body) {
		t.Fatalf("the room after a rebuild:\n%s\nwant as before:\n%s", after.Body, before.Body)
	}
}
