package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
)

// flag reads a boolean field. Absent or null: false.
func (b body) flag(field string) (bool, error) {
	raw, ok := b[field]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, domain.FieldError(field, "Must be a valid boolean.")
	}
	return v, nil
}

type inviteView struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

// createInvite answers POST /chatrooms/<id>/invites/: a member's invite to
// the room, whose token is shown this once (the log keeps its hash).
func (s *Server) createInvite(c echo.Context) error {
	id, err := pathID(c, domain.ErrConversationNotFound)
	if err != nil {
		return err
	}
	inv, err := s.cmd.CreateInvite(c.Request().Context(), actor(c), id)
	if err != nil {
		return err
	}
	if err := s.waitProjected(c, inv.Position); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, inviteView{Token: inv.Token, ExpiresAt: formatTime(inv.ExpiresAt.In(time.UTC))})
}
