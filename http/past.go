package http

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/history"
	"github.com/evchat/evchat/readmodel"
)

// Past answers how things stood at a moment of the past (?as_of=),
// computed from the log (package history).
type Past interface {
	Messages(ctx context.Context, user, conv int64, cut history.Cut, p readmodel.Page) (readmodel.PageResult, error)
	Message(ctx context.Context, user, id int64, cut history.Cut) (readmodel.Message, error)
	Chatrooms(ctx context.Context, user int64, cut history.Cut) ([]readmodel.Chatroom, error)
}

// asOf reads ?as_of=, an RFC 3339 time or a log position; ok false when
// the request asks for the present.
func (s *Server) asOf(c echo.Context) (cut history.Cut, ok bool, err error) {
	v := c.QueryParam("as_of")
	if v == "" {
		if c.QueryParams().Has("as_of") {
			return cut, false, domain.FieldError("as_of", "Enter an RFC 3339 time or a log position.")
		}
		return cut, false, nil
	}
	if s.cfg.Past == nil {
		return cut, false, domain.Errorf(domain.KindUnavailable, "Time travel is not enabled on this server.")
	}
	if cut, err = history.ParseCut(v); err != nil {
		return cut, false, domain.FieldError("as_of", "Enter an RFC 3339 time or a log position.")
	}
	return cut, true, nil
}

// pastConversationMessages is list-conversation-messages at a moment.
func (s *Server) pastConversationMessages(c echo.Context, conv int64, cut history.Cut, p readmodel.Page) error {
	res, err := s.cfg.Past.Messages(c.Request().Context(), caller(c).UserID, conv, cut, p)
	if err != nil {
		return err
	}
	return s.writePage(c, res, cut.String())
}

// pastMessage is GET /messages/<id>/ at a moment.
func (s *Server) pastMessage(c echo.Context, id int64, cut history.Cut) error {
	m, err := s.cfg.Past.Message(c.Request().Context(), caller(c).UserID, id, cut)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newMessageView(m, s.mediaURLs(c)))
}
