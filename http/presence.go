package http

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
	"github.com/evchat/evchat/realtime"
)

// Presence keeps who is online across processes: the hub tells it of
// connections (realtime.PresenceStore), and GET /users/<id>/presence/
// reads it.
type Presence interface {
	realtime.PresenceStore
	// State returns whether user is online, and when their last
	// connection closed (nil: never).
	State(ctx context.Context, user int64) (online bool, lastSeen *time.Time, err error)
}

// Deliveries notes delivery receipts, to be recorded in bulk out of the
// way of the frame or list that caused them (commands.Deliveries). Record
// must not block.
type Deliveries interface {
	Record(conversation, receiver int64, ids ...int64)
}

// errUserNotFound answers for a user the caller may not see.
var errUserNotFound = domain.Errorf(domain.KindNotFound, "User not found")

type presenceView struct {
	User     int64   `json:"user"`
	Online   bool    `json:"online"`
	LastSeen *string `json:"last_seen"`
}

// userPresence is GET /users/<id>/presence/: only for users who share a
// room with the caller (or the caller): 404 otherwise, as for no user.
func (s *Server) userPresence(c echo.Context) error {
	id, err := pathID(c, errUserNotFound)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if me := caller(c).UserID; id != me {
		shared, err := s.rm.SharesRoom(ctx, me, id)
		if err != nil {
			return err
		}
		if !shared {
			return errUserNotFound
		}
	}
	v := presenceView{User: id}
	if s.cfg.Presence != nil {
		online, seen, err := s.cfg.Presence.State(ctx, id)
		if err != nil {
			return err
		}
		v.Online = online
		if seen != nil {
			t := formatTime(*seen)
			v.LastSeen = &t
		}
	}
	return c.JSON(http.StatusOK, v)
}

// recordListed notes that a list showed its messages to the caller: those
// they received and had not had delivered are delivered now. The answer
// shows them as they were before this listing.
func (s *Server) recordListed(c echo.Context, msgs []readmodel.Message) {
	if s.cfg.Deliveries == nil {
		return
	}
	me := caller(c).UserID
	byRoom := map[int64][]int64{}
	for _, m := range msgs {
		if containsID(m.Receivers, me) && !containsID(m.DeliveredTo, me) {
			byRoom[m.ConversationID] = append(byRoom[m.ConversationID], m.ID)
		}
	}
	for room, ids := range byRoom {
		s.cfg.Deliveries.Record(room, me, ids...)
	}
}

func containsID(xs []int64, x int64) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// presenceStore is p as the hub takes it: nil when there is none.
func presenceStore(p Presence) realtime.PresenceStore {
	if p == nil {
		return nil
	}
	return p
}
