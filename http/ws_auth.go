package http

import (
	"context"
	"encoding/json"

	"github.com/evchat/evchat/realtime"
)

// reauthenticate handles an in-band {"type": "auth", "token": "..."}
// frame: a valid access token of the socket's user moves the socket's
// close to that token's expiry (and ties it to that token's login
// session), acknowledged with {"type": "auth", "expires_at": "..."}. A
// missing or invalid token gets an error frame; the socket keeps its
// current expiry. A token of another user closes the socket (1008).
func (s *Server) reauthenticate(ctx context.Context, so *realtime.Session, token *string) {
	h := s.hub
	if token == nil || *token == "" {
		h.rt.Write(so, realtime.ErrorFrame("token: This field is required."))
		return
	}
	cl, err := s.tokens.Authenticate(ctx, *token)
	if err != nil {
		_, b := errorResponse(unavailable(err, s.cfg.Unreachable))
		detail := "Invalid token."
		if m, ok := b.(map[string]string); ok && m["detail"] != "" {
			detail = m["detail"]
		}
		h.rt.Write(so, realtime.ErrorFrame(detail))
		return
	}
	if cl.UserID != so.User() {
		h.rt.ForeignToken(so)
		return
	}
	h.rt.Reauthenticated(so, cl.SessionID, cl.Expires)
	ack, _ := json.Marshal(map[string]string{"type": "auth", "expires_at": formatTime(cl.Expires)})
	h.rt.Write(so, ack)
}
