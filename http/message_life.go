package http

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

// The endpoints of a message's life after its send (API.md section 8):
// GET, PATCH (edit) and DELETE /messages/<id>/, its history, and its
// reactions. Edits, deletes and reactions count against the send rate
// limit.

// roomMessage returns a message the caller may see: 404 when there is no
// such message, 403 when the caller is not a member of its room.
func (s *Server) roomMessage(c echo.Context) (readmodel.Message, error) {
	id, err := pathID(c, domain.ErrMessageNotFound)
	if err != nil {
		return readmodel.Message{}, err
	}
	m, err := s.rm.Message(c.Request().Context(), id)
	if errors.Is(err, readmodel.ErrNotFound) {
		return readmodel.Message{}, domain.ErrMessageNotFound
	}
	if err != nil {
		return readmodel.Message{}, err
	}
	if err := s.checkMember(c, m.ConversationID); err != nil {
		return readmodel.Message{}, err
	}
	return m, nil
}

func (s *Server) getMessage(c echo.Context) error {
	if cut, past, err := s.asOf(c); err != nil || past {
		if err != nil {
			return err
		}
		id, err := pathID(c, domain.ErrMessageNotFound)
		if err != nil {
			return err
		}
		return s.pastMessage(c, id, cut)
	}
	m, err := s.roomMessage(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newMessageView(m, s.mediaURLs(c)))
}

func (s *Server) messageHistory(c echo.Context) error {
	m, err := s.roomMessage(c)
	if err != nil {
		return err
	}
	vs, err := s.rm.MessageHistory(c.Request().Context(), m.ID)
	if errors.Is(err, readmodel.ErrNotFound) {
		return domain.ErrMessageNotFound
	}
	if err != nil {
		return err
	}
	out := make([]versionView, len(vs))
	for i, v := range vs {
		out[i] = versionView{Text: v.Text, EditedAt: formatTime(v.At), By: v.By}
	}
	return c.JSON(http.StatusOK, out)
}

// answerChanged waits for the read model to show a change and answers
// with the message as it now is.
func (s *Server) answerChanged(c echo.Context, ch commands.Changed) error {
	if err := s.waitProjected(c, ch.Position); err != nil {
		return err
	}
	m, err := s.rm.Message(c.Request().Context(), ch.MessageID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newMessageView(m, s.mediaURLs(c)))
}

func (s *Server) editMessage(c echo.Context) error {
	id, err := pathID(c, domain.ErrMessageNotFound)
	if err != nil {
		return err
	}
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	text, err := b.str("text")
	if err != nil {
		return err
	}
	if text == nil {
		return domain.FieldError("text", "This field is required.")
	}
	if err := allow(s.lim.send, caller(c).UserID); err != nil {
		return err
	}
	ch, err := s.cmd.EditMessage(c.Request().Context(), actor(c), id, *text)
	if err != nil {
		return err
	}
	return s.answerChanged(c, ch)
}

func (s *Server) deleteMessage(c echo.Context) error {
	id, err := pathID(c, domain.ErrMessageNotFound)
	if err != nil {
		return err
	}
	if err := allow(s.lim.send, caller(c).UserID); err != nil {
		return err
	}
	ch, err := s.cmd.DeleteMessage(c.Request().Context(), actor(c), id)
	if err != nil {
		return err
	}
	if err := s.waitProjected(c, ch.Position); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"message": "Message deleted"})
}

func (s *Server) addReaction(c echo.Context) error    { return s.react(c, true) }
func (s *Server) removeReaction(c echo.Context) error { return s.react(c, false) }

func (s *Server) react(c echo.Context, add bool) error {
	id, err := pathID(c, domain.ErrMessageNotFound)
	if err != nil {
		return err
	}
	// The router may hand the segment over still escaped: decode it once
	// (an emoji holds no '%', so decoding an already decoded one fails and
	// leaves it as it is).
	emoji := c.Param("emoji")
	if dec, err := url.PathUnescape(emoji); err == nil {
		emoji = dec
	}
	if err := allow(s.lim.send, caller(c).UserID); err != nil {
		return err
	}
	ch, err := s.cmd.React(c.Request().Context(), actor(c), id, emoji, add)
	if err != nil {
		return err
	}
	return s.answerChanged(c, ch)
}

// optionalReplyTo reads a send's reply_to: absent, null or empty is none,
// anything else a positive message id.
func optionalReplyTo(b body) (int64, error) {
	raw, ok := b["reply_to"]
	if !ok || string(raw) == "null" || string(raw) == `""` {
		return 0, nil
	}
	id, err := b.id("reply_to")
	if err != nil {
		return 0, err
	}
	if id <= 0 {
		return 0, domain.ErrReplyTo
	}
	return id, nil
}
