package http

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
)

// Group administration (API.md section 8): admins rename a group, add and
// remove members and promote members. Refusals: 404 no such room, 403 not a
// member or not an admin, 400 bad input.

// updateChatroom is PATCH /chatrooms/<id>/ {"name", "description"}: a
// field left out is unchanged; null is refused (the log records changes,
// not clearings); nothing changed answers the room as it is.
func (s *Server) updateChatroom(c echo.Context) error {
	id, err := pathID(c, domain.ErrConversationNotFound)
	if err != nil {
		return err
	}
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	cmd := commands.UpdateChatroom{ConversationID: id}
	for _, f := range []struct {
		name string
		dst  **string
	}{{"name", &cmd.Name}, {"description", &cmd.Description}} {
		if raw, ok := b[f.name]; ok && string(raw) == "null" {
			return domain.FieldError(f.name, "This field may not be null.")
		}
		if *f.dst, err = b.str(f.name); err != nil {
			return err
		}
	}
	w, err := s.cmd.UpdateChatroom(c.Request().Context(), actor(c), cmd)
	if err != nil {
		return err
	}
	return s.answerChatroom(c, id, w)
}

// answerChatroom answers 200 with the room as the read model shows it once
// it has w.
func (s *Server) answerChatroom(c echo.Context, id int64, w commands.Written) error {
	if err := s.waitProjected(c, w.Position); err != nil {
		return err
	}
	room, err := s.rm.Chatroom(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newChatroomView(room, s.mediaURLs(c), false))
}

// addMember is POST /chatrooms/<id>/members/ {"user"}: 201 with the new
// membership, or 200 with the existing one when the user is a member
// already (as a join answers).
func (s *Server) addMember(c echo.Context) error {
	id, user, err := roomAndUser(c)
	if err != nil {
		return err
	}
	j, err := s.cmd.AddMember(c.Request().Context(), actor(c), id, user)
	if err != nil {
		return err
	}
	return s.answerMembership(c, j)
}

// roomAndUser reads the room of the path and the "user" of the JSON body.
func roomAndUser(c echo.Context) (room, user int64, err error) {
	if room, err = pathID(c, domain.ErrConversationNotFound); err != nil {
		return 0, 0, err
	}
	b, err := readJSON(c)
	if err != nil {
		return 0, 0, err
	}
	user, err = b.id("user")
	return room, user, err
}

// removeMember is DELETE /chatrooms/<id>/members/<user>/. The removed
// user's sockets for the room close as on a leave.
func (s *Server) removeMember(c echo.Context) error {
	id, err := pathID(c, domain.ErrConversationNotFound)
	if err != nil {
		return err
	}
	user, err := strconv.ParseInt(c.Param("user"), 10, 64)
	if err != nil || user <= 0 {
		return domain.ErrNotMemberToLeave
	}
	w, err := s.cmd.RemoveMember(c.Request().Context(), actor(c), id, user)
	if err != nil {
		return err
	}
	if err := s.waitProjected(c, w.Position); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"message": "Member removed"})
}

// promoteAdmin is POST /chatrooms/<id>/admins/ {"user"}: 200 with the room.
func (s *Server) promoteAdmin(c echo.Context) error {
	id, user, err := roomAndUser(c)
	if err != nil {
		return err
	}
	w, err := s.cmd.PromoteAdmin(c.Request().Context(), actor(c), id, user)
	if err != nil {
		return err
	}
	return s.answerChatroom(c, id, w)
}
