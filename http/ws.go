package http

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
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
	"github.com/olahol/melody"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/realtime"
)

// socketQueue is melody's outbound queue per socket: the hub's backlog
// (128 frames) and room for its replies and close frame.
const socketQueue = 128 + 16

// sessionKey is the melody session key of a socket's realtime.Session.
const sessionKey = "session"

// hub serves WebSockets with melody; realtime.Hub decides what each
// socket hears.
type hub struct {
	m  *melody.Melody
	rt *realtime.Hub

	mu sync.Mutex
	// closing refuses new upgrades; upgrading counts those between the
	// handshake and melody's registration of their session (see close).
	closing   bool
	upgrading int
}

// melodyConn adapts a melody session to realtime.Conn.
type melodyConn struct{ s *melody.Session }

func (c melodyConn) Write(frame []byte) error { return c.s.Write(frame) }
func (c melodyConn) Close(code int, reason string) error {
	return c.s.CloseWithMsg(melody.FormatCloseMessage(code, reason))
}
func (c melodyConn) IsClosed() bool { return c.s.IsClosed() }

func newHub(srv *Server) *hub {
	m := melody.New()
	// A message frame must hold any text the REST send accepts: JSON
	// escapes a control character in 6 bytes.
	m.Config.MaxMessageSize = 6*int64(srv.cmd.Limits().MaxTextBytes) + 4<<10
	m.Config.MessageBufferSize = socketQueue
	m.Config.WriteWait = 5 * time.Second
	if srv.cfg.WriteWait > 0 {
		m.Config.WriteWait = srv.cfg.WriteWait
	}
	m.Upgrader = &websocket.Upgrader{
		ReadBufferSize: 1024, WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true }, // checked before the upgrade
	}
	h := &hub{m: m, rt: realtime.New(realtime.Config{
		Log: srv.store, Watermark: srv.wm, Bus: srv.cfg.Bus, Logger: srv.log, WriteWait: m.Config.WriteWait,
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
	})}
	// melody's connect handler is global; each upgrade leaves its own start hook.
	m.HandleConnect(func(ms *melody.Session) {
		if v, ok := ms.Get("start"); ok {
			v.(func(*melody.Session))(ms)
			ms.UnSet("start")
		}
	})
	m.HandleMessage(srv.onFrame)
	m.HandleMessageBinary(func(ms *melody.Session, _ []byte) {
		if so := sessionOf(ms); so != nil && h.rt.Has(so) {
			h.rt.Write(so, realtime.ErrorFrame("Binary frames are not accepted; send JSON in text frames."))
		}
	})
	m.HandleSentMessage(func(s *melody.Session, _ []byte) {
		srv.observer.FrameOut()
		if so := sessionOf(s); so != nil {
			so.Sent()
		}
	})
	m.HandleDisconnect(func(s *melody.Session) {
		if so := sessionOf(s); so != nil {
			h.rt.Remove(so)
			srv.socketHook(SocketEnded, so.User(), so.Room())
		}
	})
	m.HandleError(func(s *melody.Session, err error) {
		if errors.Is(err, melody.ErrMessageBufferFull) {
			if so := sessionOf(s); so != nil {
				h.rt.Overflowed(so)
			}
		}
	})
	return h
}

// sessionOf returns the realtime session of a melody session, once started.
func sessionOf(ms *melody.Session) *realtime.Session {
	if v, ok := ms.Get(sessionKey); ok {
		return v.(*realtime.Session)
	}
	return nil
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
	base := s.baseURL(c) // the echo context is not ours once the handler returns
	keys := map[string]any{}
	keys["start"] = func(ms *melody.Session) {
		so := realtime.NewSession(melodyConn{ms}, cl.UserID, cl.SessionID, room, base)
		ms.Set(sessionKey, so)
		ctx := context.WithoutCancel(r.Context())
		h.rt.Start(ctx, so, since, func() { s.socketHook(SocketRegistered, cl.UserID, room) },
			func(ctx context.Context) (bool, error) {
				// The user may have left between the check above and now.
				_, member, err := s.rm.Membership(ctx, room, cl.UserID)
				return member, err
			})
		h.rt.ExpireAt(so, cl.Expires) // unless an in-band token extends it
	}
	// melody serves the socket inside the call that upgrades it. Run that
	// call in a goroutine of its own and return from the HTTP handler once
	// the connection is hijacked: net/http then lets go of its state for
	// the connection (request buffers of several KiB), which an idle socket
	// would otherwise keep for its whole life.
	if !h.beginUpgrade() {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "The server is shutting down.")
	}
	var upgraded sync.Once
	start := keys["start"].(func(*melody.Session))
	keys["start"] = func(ms *melody.Session) {
		upgraded.Do(h.endUpgrade)
		start(ms)
	}
	hw := &hijackSignal{ResponseWriter: c.Response(), hijacked: make(chan struct{})}
	failed := make(chan error, 1)
	go func() {
		err := h.m.HandleRequestWithKeys(hw, r, keys)
		upgraded.Do(h.endUpgrade)
		failed <- err
	}()
	select {
	case <-hw.hijacked:
		return nil
	case err := <-failed:
		return err // the upgrade was refused; the response is written
	}
}

// hijackSignal tells when the connection has been taken over.
type hijackSignal struct {
	http.ResponseWriter
	hijacked chan struct{}
	once     sync.Once
}

func (h *hijackSignal) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	defer h.once.Do(func() { close(h.hijacked) })
	return http.NewResponseController(h.ResponseWriter).Hijack()
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

func (s *Server) onFrame(ms *melody.Session, msg []byte) {
	h := s.hub
	s.observer.FrameIn()
	so := sessionOf(ms)
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
	// melody registers a session after its handshake; one still on its way
	// when melody closes would wait for registration forever. Refuse new
	// upgrades and let those under way register first.
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	for h.pending() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	err := h.m.CloseWithMsg(melody.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"))
	// Wait for the sockets' close frames to go out and their sessions to end.
	for h.rt.Open() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	return err
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

func (h *hub) endUpgrade() {
	h.mu.Lock()
	h.upgrading--
	h.mu.Unlock()
}

func (h *hub) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.upgrading
}
