package http

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/realtime"
)

// socketQueue is the outbound queue per socket: the hub's backlog (128
// frames) and room for its replies and close frame.
const socketQueue = 128 + 16

// hub serves WebSockets (socket.go); realtime.Hub decides what each
// socket hears.
type hub struct {
	srv *Server
	rt  *realtime.Hub
	up  *websocket.Upgrader
	// writeWait bounds each write to a socket; maxMessage is the largest
	// frame a client may send.
	writeWait  time.Duration
	maxMessage int64

	mu sync.Mutex
	// closing refuses new upgrades; upgrading counts those between the
	// handshake and the registration of their socket (see close).
	closing   bool
	upgrading int
	socks     map[*socket]struct{}
}

func newHub(srv *Server) *hub {
	h := &hub{srv: srv, socks: map[*socket]struct{}{},
		// A message frame must hold any text the REST send accepts: JSON
		// escapes a control character in 6 bytes.
		maxMessage: 6*int64(srv.cmd.Limits().MaxTextBytes) + 4<<10,
		writeWait:  5 * time.Second,
		up: &websocket.Upgrader{
			// An idle socket's reader waits with its read buffer: 256
			// bytes hold a typing, read or short message frame in one
			// read (a longer frame takes a few).
			ReadBufferSize: 256, WriteBufferSize: 1024,
			// The write buffer is taken from the pool for a write and
			// put back after it: an idle socket holds none.
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true }, // checked before the upgrade
		},
	}
	if srv.cfg.WriteWait > 0 {
		h.writeWait = srv.cfg.WriteWait
	}
	h.rt = realtime.New(realtime.Config{
		Log: srv.store, Watermark: srv.wm, Bus: srv.cfg.Bus, Logger: srv.log, WriteWait: h.writeWait,
		ResumeMax: srv.cfg.ResumeMax, PerUser: srv.cfg.SocketsPerUser, Max: srv.cfg.SocketsMax,
		TypingInterval: srv.cfg.TypingInterval, Clock: srv.cfg.Clock,
		Members: func(ctx context.Context, room int64) ([]int64, error) {
			c, err := srv.rm.Chatroom(ctx, room)
			return c.Members, err
		},
		OnDrop: srv.observer.SocketDropped,
		Delivered: func(room, user, id int64) {
			if srv.cfg.Deliveries != nil {
				srv.cfg.Deliveries.Record(room, user, id)
			}
		},
		Presence: presenceStore(srv.cfg.Presence), PresenceDebounce: srv.cfg.PresenceDebounce,
		PresenceHeartbeat: srv.cfg.PresenceHeartbeat,
		CoMembers: func(ctx context.Context, user int64) ([]int64, error) {
			return srv.rm.CoMembers(ctx, user)
		},
		Render: srv.frameOf,
	})
	return h
}

// onText handles a client's text frame.
func (h *hub) onText(ws *socket, msg []byte) { h.srv.onFrame(ws, msg) }

// onBinary answers a client's binary frame.
func (h *hub) onBinary(ws *socket) {
	if so := ws.so; so != nil && h.rt.Has(so) {
		h.rt.Write(so, realtime.ErrorFrame("Binary frames are not accepted; send JSON in text frames."))
	}
}

// sent counts a text frame written to a socket.
func (h *hub) sent(ws *socket) {
	h.srv.observer.FrameOut()
	if so := ws.so; so != nil {
		so.Sent()
	}
}

// ended forgets a socket whose connection has ended.
func (h *hub) ended(ws *socket) {
	h.mu.Lock()
	delete(h.socks, ws)
	h.mu.Unlock()
	if so := ws.so; so != nil {
		h.rt.Remove(so)
		h.srv.socketHook(SocketEnded, so.User(), so.Room())
	}
}

// SocketPoint names a step of a WebSocket's start, for Config.SocketHook.
type SocketPoint string

const (
	// SocketChecking: the position the socket starts from has been read;
	// membership is checked next.
	SocketChecking SocketPoint = "checking"
	// SocketRegistered: the socket hears the room's live frames; its
	// membership is checked once more next, then it catches up.
	SocketRegistered SocketPoint = "registered"
	// SocketEnded: the socket's connection has ended and its slot (see
	// Config.SocketsPerUser) is free.
	SocketEnded SocketPoint = "ended"
)

func (s *Server) socketHook(p SocketPoint, user, room int64) {
	if s.cfg.SocketHook != nil {
		s.cfg.SocketHook(p, user, room)
	}
}

// serveWS authenticates, checks membership, and upgrades.
func (s *Server) serveWS(c echo.Context) error {
	r := c.Request()
	// The cookie is sent by browsers to any page's requests: it counts only
	// from an allowed Origin (headers and query tokens cannot be forged
	// cross-site). Without a credential that counts: 401.
	raw := bearer(c, false)
	if raw == "" && r.Header.Get("Authorization") == "" {
		raw = c.QueryParam("token")
	}
	if ck, err := c.Cookie(accessCookie); raw == "" && r.Header.Get("Authorization") == "" && err == nil && s.originAllowed(c) {
		raw = ck.Value
	}
	if raw == "" {
		return errNotAuthenticated
	}
	cl, err := s.tokens.Authenticate(r.Context(), raw)
	if err != nil {
		return err
	}
	room, err := pathID(c, domain.ErrConversationNotFound)
	if err != nil {
		return err
	}
	c.SetRequest(r.WithContext(context.WithValue(r.Context(), userKey, cl)))
	// Every socket starts by catching up from a position: the client's
	// ?since=, or where the read model is now. The handshake answer goes out
	// before the socket is registered for live frames, and an event
	// projected in between must not be lost: catching up from here closes
	// that gap the same way a resume does.
	//
	// That position is read before membership is checked, so the check
	// sees the read model at it or later: a leave projected before the
	// position is seen by the check (403), and one projected after it is
	// among the events the socket catches up on (its member_left, then the
	// close). The other order would start a socket past a leave it never
	// hears of.
	since := s.wm.Position()
	s.socketHook(SocketChecking, cl.UserID, room)
	if err := s.checkMember(c, room); err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return domain.Errorf(domain.KindInvalid, "Expected a WebSocket upgrade request.")
	}
	switch v := c.QueryParam("since"); v {
	case "", sinceNow: // where the read model is now
	case sinceStart:
		since = eventstore.Start
	default:
		if since, err = eventstore.ParsePosition(v); err != nil {
			return domain.FieldError("since", badSince)
		}
	}
	h := s.hub
	if !h.beginUpgrade() {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "The server is shutting down.")
	}
	// The handshake answer carries the headers set so far (request id...).
	conn, err := h.up.Upgrade(c.Response(), r, c.Response().Header())
	if err != nil {
		h.endUpgrade(nil)
		return err // the upgrade was refused; the response is written
	}
	ws := newSocket(h, conn)
	h.endUpgrade(ws)
	so := realtime.NewSession(ws, cl.UserID, cl.SessionID, room, s.baseURL(c))
	ws.so = so
	// The session's context carries nothing of the request's, which is let
	// go once this handler returns.
	h.rt.Start(context.Background(), so, since, func() { s.socketHook(SocketRegistered, cl.UserID, room) },
		func(ctx context.Context) (bool, error) {
			// The user may have left between the check above and now.
			_, member, err := s.rm.Membership(ctx, room, cl.UserID)
			return member, err
		})
	h.rt.ExpireAt(so, cl.Expires) // unless an in-band token extends it
	// The socket is read on a goroutine of its own, and this handler
	// returns: net/http lets go of its state for the connection (request
	// buffers of several KiB) and of this goroutine's stack, grown by the
	// database reads above, which an idle socket would otherwise keep for
	// its whole life. Nothing is read from the socket before its session
	// has started.
	go ws.read()
	return nil
}

// originAllowed reports whether a request's Origin is this server's own
// (the same scheme and host as the request, or as the public URL) or one
// of the allowed origins. The scheme counts: a page served over plain HTTP
// on the same host (one a network attacker can write) is another origin
// than the HTTPS site.
func (s *Server) originAllowed(c echo.Context) bool {
	r := c.Request()
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Scheme, c.Scheme()) && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if pub, err := url.Parse(s.cfg.PublicURL); s.cfg.PublicURL != "" && err == nil &&
		strings.EqualFold(u.Scheme, pub.Scheme) && strings.EqualFold(u.Host, pub.Host) {
		return true
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// frameOf renders the frame of a room event, and its room. The frames of
// a message's life and of group administration are rendered by stateFrame.
func (s *Server) frameOf(e eventstore.RecordedEvent, base string) ([]byte, int64, bool) {
	if !strings.HasPrefix(e.Stream, "conversation-") && !strings.HasPrefix(e.Stream, "receipts-") &&
		!strings.HasPrefix(e.Stream, "deliveries-") {
		return nil, 0, false
	}
	ev, md, ok, err := s.cmd.Registry().DecodeRecorded(e.ID.String(), e.Type, e.Data, e.Metadata, e.Created)
	if err != nil || !ok {
		return nil, 0, false
	}
	pos := e.Position.String()
	var v any
	var room int64
	switch ev := ev.(type) {
	case domain.MessageSent:
		room = ev.ConversationID
		mv := sentMessageView(ev, md.Time, e.Position, mediaAt(base))
		v = struct {
			Type string `json:"type"`
			messageView
		}{"message", mv}
	case domain.MessagesRead:
		room = ev.ConversationID
		v = map[string]any{"type": "read", "conversation": room, "reader": ev.ReaderID, "message_ids": ev.MessageIDs, "position": pos}
	case domain.MemberJoined:
		room = ev.ConversationID
		v = withBy(map[string]any{"type": "member_joined", "conversation": room, "user": ev.UserID, "position": pos}, ev.By)
	case domain.MemberLeft:
		room = ev.ConversationID
		v = withBy(map[string]any{"type": "member_left", "conversation": room, "user": ev.UserID, "position": pos}, ev.By)
	default:
		var ok bool
		if v, room, ok = s.stateFrame(ev, md, pos, base); !ok {
			return nil, 0, false
		}
	}
	b, err := json.Marshal(v)
	return b, room, err == nil
}

// The spellings of ?since= besides a position: the room's start, and the
// current end of the log.
const (
	sinceStart = "0"
	sinceNow   = "now"
)

// badSince explains the position format to a client that sent another.
const badSince = "Not a valid position: use the position string of a frame or of a message (like 1f-3k), 0 for the room's start, or now."

// inbound is a client frame.
type inbound struct {
	Type         string          `json:"type"`
	Text         *string         `json:"text"`
	Conversation json.RawMessage `json:"conversation"`
	IsTyping     *bool           `json:"is_typing"`
	MessageIDs   json.RawMessage `json:"message_ids"`
	ClientID     string          `json:"client_id"`
	Token        *string         `json:"token"`
}

// decodeFrame reads a client's frame, or says what is wrong with it in the
// words of an error frame.
func decodeFrame(msg []byte) (in inbound, detail string) {
	if err := json.Unmarshal(msg, &in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return inbound{}, typeErr.Field + ": Not a valid " + jsonKind(typeErr.Type.Kind()) + "."
		}
		return inbound{}, "Frames must be JSON objects."
	}
	return in, ""
}

func (s *Server) onFrame(ws *socket, msg []byte) {
	h := s.hub
	s.observer.FrameIn()
	so := ws.so
	if so == nil || !h.rt.Has(so) {
		return
	}
	if !utf8.Valid(msg) { // RFC 6455 section 8.1: fail the connection
		h.rt.InvalidPayload(so)
		return
	}
	if !so.Allow() {
		h.rt.Write(so, realtime.ErrorFrame("Too many frames; slow down."))
		return
	}
	in, detail := decodeFrame(msg)
	if detail != "" {
		h.rt.Write(so, realtime.ErrorFrame(detail))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := commands.Actor{UserID: so.User(), RequestID: "ws-" + uuid.NewString()}
	var err error
	switch in.Type {
	case "message":
		if len(in.Conversation) > 0 && string(in.Conversation) != "null" {
			if id, ok := parseInt(in.Conversation); !ok || id != so.Room() {
				h.rt.Write(so, realtime.ErrorFrame("conversation does not match this socket's room."))
				return
			}
		}
		text := ""
		if in.Text != nil {
			text = *in.Text
		}
		if err = checkSendKey("client_id", in.ClientID); err != nil {
			break
		}
		if err = allow(s.lim.send, so.User()); err != nil {
			break
		}
		var sent commands.Sent
		sent, err = s.cmd.SendMessage(ctx, a, commands.SendMessage{
			ConversationID: so.Room(), Content: domain.MessageContent{Text: text}, IdempotencyKey: in.ClientID,
		})
		if err == nil { // the user's next REST read shows it (readwait.go)
			s.noteWritten(so.User(), sent.Position)
		}
	case "read":
		b := body{}
		if len(in.MessageIDs) > 0 {
			b["message_ids"] = in.MessageIDs
		}
		var ids []int64
		var present bool
		ids, present, err = b.ids("message_ids")
		if err == nil && !present {
			err = domain.FieldError("message_ids", "This field is required.")
		}
		if err == nil {
			err = allow(s.lim.read, so.User())
		}
		if err == nil {
			var r commands.Read
			r, err = s.cmd.MarkRead(ctx, a, commands.MarkRead{ConversationID: so.Room(), MessageIDs: ids})
			if err == nil {
				s.noteWritten(so.User(), r.Position)
			}
		}
	case "typing":
		typing := in.IsTyping == nil || *in.IsTyping
		err = h.rt.Typing(ctx, so, typing)
	case "auth":
		s.reauthenticate(ctx, so, in.Token)
		return
	default:
		err = domain.Errorf(domain.KindInvalid, "Unknown frame type %q.", in.Type)
	}
	if err != nil {
		err = unavailable(err, s.cfg.Unreachable)
		_, b := errorResponse(err)
		detail := "A server error occurred."
		switch v := b.(type) {
		case map[string]string:
			detail = v["detail"]
		case map[string][]string:
			for f, msgs := range v {
				detail = f + ": " + strings.Join(msgs, " ")
			}
		}
		if domain.KindOf(err) == domain.KindInternal {
			s.log.Error("websocket frame failed", "type", in.Type, "err", err)
		}
		h.rt.Write(so, realtime.ErrorFrame(detail))
	}
}

// jsonKind names what a frame field of Go kind k must be.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	}
	return "value"
}

// close sends every socket a going-away close frame and waits for them to end.
func (h *hub) close(ctx context.Context) error {
	// Refuse new upgrades and let those under way register first: each
	// then gets its close frame too.
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	for h.pending() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	h.mu.Lock()
	socks := slices.Collect(maps.Keys(h.socks))
	h.mu.Unlock()
	for _, ws := range socks {
		_ = ws.Close(websocket.CloseGoingAway, "server shutting down")
	}
	// Wait for the sockets' close frames to go out and their sessions to end.
	for h.rt.Open() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// beginUpgrade counts an upgrade under way, unless the hub is closing.
func (h *hub) beginUpgrade() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.upgrading++
	return true
}

// endUpgrade ends an upgrade, registering its socket (nil: refused).
func (h *hub) endUpgrade(ws *socket) {
	h.mu.Lock()
	h.upgrading--
	if ws != nil {
		h.socks[ws] = struct{}{}
	}
	h.mu.Unlock()
}

func (h *hub) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.upgrading
}
