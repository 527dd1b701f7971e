package http

import (
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

// lifeView is what a message's life after its send adds to its view, in
// one block of fields (API.md section 8).
type lifeView struct {
	EditedAt  *string            `json:"edited_at"`
	DeletedAt *string            `json:"deleted_at"`
	Reactions map[string][]int64 `json:"reactions"`
	ReplyTo   *int64             `json:"reply_to"`
}

func newLifeView(l readmodel.Life) lifeView {
	v := lifeView{EditedAt: formatTimePtr(l.EditedAt), DeletedAt: formatTimePtr(l.DeletedAt), Reactions: l.Reactions, ReplyTo: l.ReplyTo}
	if v.Reactions == nil {
		v.Reactions = map[string][]int64{}
	}
	return v
}

// sentLifeView is the life of a message just sent: a reply, perhaps.
func sentLifeView(m domain.MessageSent) lifeView {
	v := lifeView{Reactions: map[string][]int64{}}
	if m.ReplyTo != 0 {
		id := m.ReplyTo
		v.ReplyTo = &id
	}
	return v
}

// textOf is a message's text, null once it is deleted.
func textOf(m readmodel.Message) *string {
	if m.DeletedAt != nil {
		return nil
	}
	t := m.Text
	return &t
}

type versionView struct {
	Text     *string `json:"text"`
	EditedAt string  `json:"edited_at"`
	By       int64   `json:"by"`
}

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := formatTime(*t)
	return &s
}
