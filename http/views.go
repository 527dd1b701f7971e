package http

import (
	"strings"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/readmodel"
)

// timeFormat is RFC 3339 in UTC with microseconds.
const timeFormat = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

type messageView struct {
	ID                int64   `json:"id"`
	Conversation      int64   `json:"conversation"`
	Sender            int64   `json:"sender"`
	Receivers         []int64 `json:"receivers"`
	AttachmentPicture *string `json:"attachment_picture"`
	AttachmentVideo   *string `json:"attachment_video"`
	Text              *string `json:"text"`
	CreatedAt         string  `json:"created_at"`
	UpdatedAt         string  `json:"updated_at"`
	ReadBy            []int64 `json:"read_by"`
	// A message's life after its send (API.md section 8; message_life.go).
	lifeView
	// DeliveredTo are the receivers the message reached (a socket of
	// theirs got it, or a list showed it), ascending; readers included.
	DeliveredTo []int64 `json:"delivered_to"`
	// Position is the message's place in the log, the opaque string of
	// its WebSocket frame: a socket opened with ?since=<position> hears
	// what came after it.
	Position string `json:"position"`
}

type chatroomView struct {
	ID          int64   `json:"id"`
	Members     []int64 `json:"members"`
	Type        string  `json:"type"`
	Name        *string `json:"name"`
	Description *string `json:"description"`
	CreatedBy   int64   `json:"created_by"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
	// Admins administer the room (API.md section 8), ascending.
	Admins      []int64      `json:"admins"`
	UnreadCount *int64       `json:"unread_count,omitempty"`
	LastMessage *messageView `json:"last_message,omitempty"`
}

// mediaURL makes the absolute URL of an attachment.
type mediaURL func(key string) string

func (u mediaURL) of(a *domain.Attachment) *string {
	if a == nil {
		return nil
	}
	s := u(a.Key)
	return &s
}

func newMessageView(m readmodel.Message, u mediaURL) messageView {
	return messageView{
		ID: m.ID, Conversation: m.ConversationID, Sender: m.SenderID, Receivers: nonNil(m.Receivers),
		AttachmentPicture: u.of(m.Picture), AttachmentVideo: u.of(m.Video), Text: textOf(m),
		CreatedAt: formatTime(m.CreatedAt), UpdatedAt: formatTime(m.UpdatedAt), ReadBy: nonNil(m.ReadBy),
		Position: m.Position.String(), lifeView: newLifeView(m.Life),
		DeliveredTo: nonNil(m.DeliveredTo),
	}
}

// sentMessageView is a message as its event tells it, at position pos.
func sentMessageView(m domain.MessageSent, at time.Time, pos eventstore.Position, u mediaURL) messageView {
	return messageView{
		ID: m.MessageID, Conversation: m.ConversationID, Sender: m.SenderID, Receivers: nonNil(m.Receivers),
		AttachmentPicture: u.of(m.Picture), AttachmentVideo: u.of(m.Video), Text: &m.Text,
		CreatedAt: formatTime(at), UpdatedAt: formatTime(at), ReadBy: []int64{}, Position: pos.String(),
		lifeView:    sentLifeView(m),
		DeliveredTo: []int64{},
	}
}

func newChatroomView(c readmodel.Chatroom, u mediaURL, withExtras bool) chatroomView {
	v := chatroomView{
		ID: c.ID, Members: nonNil(c.Members), Type: c.Type, Name: c.Name, Description: c.Description,
		CreatedBy: c.CreatedBy, CreatedAt: formatTime(c.CreatedAt), UpdatedAt: formatTime(c.UpdatedAt),
		Admins: nonNil(c.Admins),
	}
	if withExtras {
		n := c.UnreadCount
		v.UnreadCount = &n
		if c.LastMessage != nil {
			m := newMessageView(*c.LastMessage, u)
			v.LastMessage = &m
		}
	}
	return v
}

// createdChatroomView is a new chatroom as its command decided it; the read
// model shows the same once it has caught up.
func createdChatroomView(c *domain.Conversation, at time.Time) chatroomView {
	ts := formatTime(at)
	return chatroomView{
		ID: c.ID, Members: nonNil(c.Members()), Type: string(c.Type), Name: c.Name, Description: c.Description,
		CreatedBy: c.CreatedBy, CreatedAt: ts, UpdatedAt: ts,
		Admins: nonNil(c.Admins()),
	}
}

func nonNil(xs []int64) []int64 {
	if xs == nil {
		return []int64{}
	}
	return xs
}

// trimSlash joins a base URL and a path without doubling the slash.
func trimSlash(base string) string { return strings.TrimRight(base, "/") }
