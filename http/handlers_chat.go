package http

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

func (s *Server) createChatroom(c echo.Context) error {
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	var cmd commands.CreateChatroom
	if cmd.Name, err = b.str("name"); err != nil {
		return err
	}
	if cmd.Description, err = b.str("description"); err != nil {
		return err
	}
	typ, err := b.str("type")
	if err != nil {
		return err
	}
	cmd.Type = domain.Direct // the default when absent or null
	if typ != nil {
		cmd.Type = domain.ConversationType(*typ) // "" included: not a valid choice
	}
	if cmd.Members, _, err = b.ids("members"); err != nil {
		return err
	}
	if cmd.InviteOnly, err = b.flag("invite_only"); err != nil {
		return err
	}
	created, err := s.cmd.CreateChatroom(c.Request().Context(), actor(c), cmd)
	if err != nil {
		return err
	}
	if err := s.waitProjected(c, created.Position); err != nil {
		return err
	}
	if created.Existing {
		// The direct chat the two have already: 200 with it, as the read
		// model shows it (its times and members), not a second room.
		room, err := s.rm.Chatroom(c.Request().Context(), created.Conversation.ID)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, newChatroomView(room, s.mediaURLs(c), false))
	}
	// From the command's result, not the read model: the wait is bounded,
	// and a lagging read model must not turn a created room into an error.
	return c.JSON(http.StatusCreated, createdChatroomView(created.Conversation, created.At))
}

func (s *Server) joinChatroom(c echo.Context) error {
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	id, err := b.id(b.first("chatroom_id", "conversation", "conversation_id"))
	if err != nil {
		return err
	}
	if id <= 0 {
		return domain.ErrConversationNotFound
	}
	invite, err := b.str("invite")
	if err != nil {
		return err
	}
	token := ""
	if invite != nil {
		token = *invite
	}
	j, err := s.cmd.JoinChatroom(c.Request().Context(), actor(c), id, token)
	if err != nil {
		return err
	}
	return s.answerMembership(c, j)
}

// answerMembership answers a join or an admin's add once the read model
// shows it: 201 with a new membership, 200 with one that existed. An
// existing membership may come from a racing join not projected yet: it is
// waited for as a new one.
func (s *Server) answerMembership(c echo.Context, j commands.Joined) error {
	if err := s.waitProjected(c, j.Position); err != nil {
		return err
	}
	status := http.StatusOK
	if j.New {
		status = http.StatusCreated
	}
	return c.JSON(status, membershipView{ID: j.MembershipID, Conversation: j.ConversationID, User: j.UserID})
}

// listChatrooms lists the caller's rooms, or with ?as_of= the rooms the
// caller was a member of then, as they stood (without unread counts, which
// the past does not keep).
func (s *Server) listChatrooms(c echo.Context) error {
	cut, past, err := s.asOf(c)
	if err != nil {
		return err
	}
	ctx, user := c.Request().Context(), caller(c).UserID
	var rooms []readmodel.Chatroom
	if past {
		rooms, err = s.cfg.Past.Chatrooms(ctx, user, cut)
	} else {
		rooms, err = s.rm.UserChatrooms(ctx, user)
	}
	if err != nil {
		return err
	}
	urls := s.mediaURLs(c)
	out := make([]chatroomView, len(rooms))
	for i, r := range rooms {
		out[i] = newChatroomView(r, urls, true)
		if past {
			out[i].UnreadCount = nil
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) leaveChatroom(c echo.Context) error {
	id, err := pathID(c, domain.ErrConversationNotFound)
	if err != nil {
		return err
	}
	w, err := s.cmd.LeaveChatroom(c.Request().Context(), actor(c), id)
	if err != nil {
		return err
	}
	if err := s.waitProjected(c, w.Position); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"message": "Leave chatroom successful"})
}

type membershipView struct {
	ID           int64 `json:"id"`
	Conversation int64 `json:"conversation"`
	User         int64 `json:"user"`
}
