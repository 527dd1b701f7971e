package http

import (
	"bufio"
	"bytes"
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

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
	"github.com/olahol/melody"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/projections"
)

// ControlChannel carries typing notices and session ends between processes.
const ControlChannel = "evchat_ws"

const (
	socketBacklog   = 128     // frames queued to one socket before it is dropped as too slow
	resumeScanLimit = 200_000 // log events a resume may scan before giving up
	resumeBuffer    = 4096    // live frames a resuming socket may hold back before it is dropped
	framesPerSecond = 20      // inbound frames per socket, with a burst of twice that
)

// socket is one WebSocket connection in one room.
type socket struct {
	s       *melody.Session
	user    int64
	session uuid.UUID
	room    int64
	base    string // scheme://host for attachment URLs

	mu       sync.Mutex
	catching bool // resuming: live frames are buffered
	buffered []positioned
	last     eventstore.Position // last frame from the log sent
	// closeWith, set while catching up, closes the socket once caught up.
	closeWith []byte
	pending   int // frames queued, not yet written
	dropped   bool
	drained   chan struct{} // signalled when a queued frame is written or the socket ends

	tokens  float64 // inbound rate limit
	refill  time.Time
	typedAt time.Time
}

type positioned struct {
	pos   eventstore.Position
	frame []byte
	// leaver is the user a member_left frame is about (0 otherwise): that
	// user's socket hears nothing of the room after it, unless (while
	// catching up) the user's member_joined comes later: see resume.
	leaver int64
	// joiner is the user a member_joined frame is about (0 otherwise).
	joiner int64
}

// hub fans out room events to sockets on this process.
type hub struct {
	srv *Server
	m   *melody.Melody

	mu    sync.Mutex
	rooms map[int64]map[*socket]struct{}
	byS   map[*melody.Session]*socket

	lagMu      sync.Mutex
	advancedAt time.Time

	// listening is closed once the control channel is listened to.
	listening     chan struct{}
	listeningOnce sync.Once

	// closing refuses new upgrades; upgrading counts those between the
	// handshake and melody's registration of their session (see close).
	closing   bool
	upgrading int
}

func newHub(srv *Server) *hub {
	m := melody.New()
	// A message frame must hold any text the REST send accepts: JSON
	// escapes a control character in 6 bytes.
	m.Config.MaxMessageSize = 6*int64(srv.cmd.Limits().MaxTextBytes) + 4<<10
	m.Config.MessageBufferSize = socketBacklog + 16
	m.Config.WriteWait = 5 * time.Second
	m.Upgrader = &websocket.Upgrader{
		ReadBufferSize: 1024, WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true }, // checked before the upgrade
	}
	h := &hub{srv: srv, m: m, rooms: map[int64]map[*socket]struct{}{}, byS: map[*melody.Session]*socket{}, advancedAt: time.Now(),
		listening: make(chan struct{})}
	// melody's connect handler is global; each upgrade leaves its own start hook.
	m.HandleConnect(func(ms *melody.Session) {
		if v, ok := ms.Get("start"); ok {
			v.(func(*melody.Session))(ms)
			ms.UnSet("start")
		}
	})
	m.HandleMessage(h.onFrame)
	m.HandleSentMessage(func(s *melody.Session, _ []byte) {
		if so := h.socketOf(s); so != nil {
			so.mu.Lock()
			so.pending--
			so.mu.Unlock()
			so.signalDrained()
		}
	})
	m.HandleDisconnect(h.remove)
	m.HandleError(func(s *melody.Session, err error) {
		if errors.Is(err, melody.ErrMessageBufferFull) {
			if so := h.socketOf(s); so != nil {
				h.drop(so)
			}
		}
	})
	return h
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
)

func (s *Server) socketHook(p SocketPoint, user, room int64) {
	if s.cfg.SocketHook != nil {
		s.cfg.SocketHook(p, user, room)
	}
}

func (h *hub) socketOf(s *melody.Session) *socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byS[s]
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
	if ck, err := c.Cookie(accessCookie); raw == "" && r.Header.Get("Authorization") == "" && err == nil && s.originAllowed(r) {
		raw = ck.Value
	}
	if raw == "" {
		return errNotAuthenticated
	}
	cl, err := s.tokens.authenticate(r.Context(), raw)
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
	if v := c.QueryParam("since"); v != "" {
		if since, err = eventstore.ParsePosition(v); err != nil {
			return domain.FieldError("since", "Not a valid position.")
		}
	}
	so := &socket{user: cl.UserID, session: cl.SessionID, room: room, base: s.baseURL(c),
		catching: true, drained: make(chan struct{}, 1), tokens: 2 * framesPerSecond, refill: time.Now()}
	keys := map[string]any{}
	h := s.hub
	keys["start"] = func(ms *melody.Session) {
		so.s = ms
		h.add(so)
		s.socketHook(SocketRegistered, cl.UserID, room)
		// The user may have left between the check above and now; their
		// member_left frame may then have gone to no socket of theirs. A
		// socket that is not a member when it starts closes at once: it
		// hears nothing of the room.
		_, member, err := s.rm.Membership(context.WithoutCancel(r.Context()), room, cl.UserID)
		switch {
		case err != nil:
			s.log.Warn("websocket membership check", "err", err)
			h.closeNow(so, unavailableClose)
			return
		case !member:
			h.closeNow(so, notMemberClose)
			return
		}
		go h.resume(context.WithoutCancel(r.Context()), so, since)
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

func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
}

func (h *hub) add(so *socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms[so.room] == nil {
		h.rooms[so.room] = map[*socket]struct{}{}
	}
	h.rooms[so.room][so] = struct{}{}
	h.byS[so.s] = so
}

func (h *hub) remove(ms *melody.Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	so := h.byS[ms]
	if so == nil {
		return
	}
	delete(h.byS, ms)
	if r := h.rooms[so.room]; r != nil {
		delete(r, so)
		if len(r) == 0 {
			delete(h.rooms, so.room)
		}
	}
	so.signalDrained() // a resume waiting for room stops waiting
}

func (so *socket) signalDrained() {
	select {
	case so.drained <- struct{}{}:
	default:
	}
}

// roomSockets returns the sockets of a room now.
func (h *hub) roomSockets(room int64) []*socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*socket, 0, len(h.rooms[room]))
	for so := range h.rooms[room] {
		out = append(out, so)
	}
	return out
}

// write queues a frame; a socket whose backlog is full is dropped.
func (h *hub) write(so *socket, frame []byte) {
	so.mu.Lock()
	if so.dropped {
		so.mu.Unlock()
		return
	}
	if so.pending >= socketBacklog {
		so.mu.Unlock()
		h.drop(so)
		return
	}
	so.pending++
	so.mu.Unlock()
	_ = so.s.Write(frame)
}

// writePaced queues a frame of a resume. The resume alone feeds the socket
// then and stalls no one, so it waits for the backlog to drain instead of
// dropping a socket that reads more slowly than the log can be read; a
// socket that takes no frame for the write deadline is dropped. It reports
// whether the socket is still open.
func (h *hub) writePaced(so *socket, frame []byte) bool {
	for {
		so.mu.Lock()
		pending, dropped := so.pending, so.dropped
		so.mu.Unlock()
		if dropped || so.s.IsClosed() {
			return false
		}
		if pending < socketBacklog/2 {
			h.write(so, frame)
			return true
		}
		select {
		case <-so.drained:
		case <-time.After(h.m.Config.WriteWait):
			h.drop(so)
			return false
		}
	}
}

// drop closes a socket that cannot keep up, without waiting for it.
func (h *hub) drop(so *socket) {
	so.mu.Lock()
	already := so.dropped
	so.dropped = true
	so.mu.Unlock()
	if already {
		return
	}
	h.srv.log.Info("dropping slow websocket", "user", so.user, "room", so.room)
	h.remove(so.s)
	_ = so.s.CloseWithMsg(melody.FormatCloseMessage(websocket.ClosePolicyViolation, "too slow"))
}

// deliver sends a log frame to a socket once, in position order; while the
// socket resumes, live frames wait in its buffer.
func (h *hub) deliver(so *socket, p positioned) {
	so.mu.Lock()
	if so.catching {
		if len(so.buffered) >= resumeBuffer { // its resume cannot keep up with the room
			so.mu.Unlock()
			h.drop(so)
			return
		}
		so.buffered = append(so.buffered, p)
		so.mu.Unlock()
		return
	}
	if !so.last.Less(p.pos) {
		so.mu.Unlock()
		return
	}
	so.last = p.pos
	so.mu.Unlock()
	h.write(so, p.frame)
}

// resume sends what a socket missed after since, then its buffered live
// frames, with no gap and no duplicate at the seam: the socket was
// registered (buffering) before the watermark was read, and everything up
// to that watermark comes from the log here. The socket keeps buffering
// until its buffer is empty, so no live frame overtakes a buffered one.
func (h *hub) resume(ctx context.Context, so *socket, since eventstore.Position) {
	defer func() { // on every return: a socket that ended mid-resume stops buffering
		so.mu.Lock()
		so.buffered, so.catching = nil, false
		so.mu.Unlock()
	}()
	upTo := h.srv.wm.Position()
	cursor, scanned := since, 0
	so.mu.Lock()
	so.last = since
	so.mu.Unlock()
	var failure string
	var absence absence
	for cursor.Less(upTo) && failure == "" {
		events, err := h.srv.store.ReadAll(ctx, cursor, 512)
		if err != nil {
			failure = "Could not resume; reload the conversation."
			h.srv.log.Error("websocket resume", "err", err)
			break
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if upTo.Less(e.Position) {
				cursor = upTo // done, even if upTo is no event's position
				break
			}
			if f, room, ok := h.frameOf(e, so.base); ok && room == so.room {
				so.mu.Lock()
				so.last = e.Position
				so.mu.Unlock()
				leaver, joiner := membershipChange(e)
				if !absence.pass(positioned{leaver: leaver, joiner: joiner}, so.user) {
					cursor = e.Position
					continue
				}
				if !h.writePaced(so, f) {
					return
				}
			}
			cursor = e.Position
		}
		if scanned += len(events); scanned > resumeScanLimit {
			failure = "Too much was missed to resume; reload the conversation."
		}
	}
	if failure != "" && !h.writePaced(so, errorFrame(failure)) {
		return
	}
	for {
		so.mu.Lock()
		buffered := so.buffered
		so.buffered = nil
		if len(buffered) == 0 {
			if absence.left {
				so.mu.Unlock()
				h.closeLeft(so) // left in what it caught up on, and not back
				return
			}
			so.catching = false // under the lock: the next live frame goes straight out
			closing := so.closeWith
			so.mu.Unlock()
			if closing != nil {
				_ = so.s.CloseWithMsg(closing)
			}
			return
		}
		so.mu.Unlock()
		for _, p := range buffered {
			so.mu.Lock()
			fresh := so.last.Less(p.pos)
			if fresh {
				so.last = p.pos
			}
			so.mu.Unlock()
			if fresh && p.joiner == so.user {
				// Back in the room: a leave heard live while catching up
				// no longer closes the socket (absence decides that).
				so.mu.Lock()
				if bytes.Equal(so.closeWith, leftClose) {
					so.closeWith = nil
				}
				so.mu.Unlock()
			}
			if fresh && absence.pass(p, so.user) && !h.writePaced(so, p.frame) {
				return
			}
		}
	}
}

// Close frames of sockets that end on the server's decision.
var (
	// leftClose: the user left the room.
	leftClose = melody.FormatCloseMessage(websocket.CloseNormalClosure, "left the conversation")
	// notMemberClose: the user was no member when the socket started.
	notMemberClose = melody.FormatCloseMessage(websocket.ClosePolicyViolation, "not a member")
	// unavailableClose: membership could not be checked; try again later.
	unavailableClose = melody.FormatCloseMessage(websocket.CloseTryAgainLater, "Service temporarily unavailable.")
)

// closeNow ends a socket before it has heard anything of its room: it
// stops buffering, leaves the room and closes with msg.
func (h *hub) closeNow(so *socket, msg []byte) {
	so.mu.Lock()
	so.buffered, so.catching = nil, false
	so.mu.Unlock()
	h.remove(so.s)
	_ = so.s.CloseWithMsg(msg)
}

// closeLeft ends a catching-up socket whose user left: it stops buffering
// (nothing after the leave is for it) and closes.
func (h *hub) closeLeft(so *socket) { h.closeNow(so, leftClose) }

// absence follows, while a socket catches up, whether its user is out of
// the room: after their member_left and until their member_joined (they
// left and came back while the socket was away), the room's frames are not
// theirs to hear. A socket whose user is still out when it has caught up
// closes as a leave.
type absence struct{ left bool }

// pass tells whether a frame goes to the socket of user, and notes the
// user leaving or joining.
func (a *absence) pass(p positioned, user int64) bool {
	switch {
	case p.joiner == user:
		a.left = false
		return true
	case a.left:
		return false
	case p.leaver == user:
		a.left = true // their own member_left still goes out
	}
	return true
}

// membershipChange returns who an event makes leave or join its room.
func membershipChange(e eventstore.RecordedEvent) (leaver, joiner int64) {
	switch e.Type {
	case domain.TypeMemberLeft:
		leaver = leaverOf(e)
	case domain.TypeMemberJoined:
		joiner = joinerOf(e)
	}
	return leaver, joiner
}

// joinerOf returns the user of a member_joined event (0 if unreadable).
func joinerOf(e eventstore.RecordedEvent) int64 {
	var joined domain.MemberJoined
	if json.Unmarshal(e.Data, &joined) != nil {
		return 0
	}
	return joined.UserID
}

// leaverOf returns the user of a member_left event (0 if unreadable).
func leaverOf(e eventstore.RecordedEvent) int64 {
	var left domain.MemberLeft
	if json.Unmarshal(e.Data, &left) != nil {
		return 0
	}
	return left.UserID
}

// closeAfterFrames closes a socket after the frames it has been given: at
// once when it is live (the close queues behind them), or when it has
// caught up, if it is still catching up (its frames wait in its buffer).
func (h *hub) closeAfterFrames(so *socket, msg []byte) {
	so.mu.Lock()
	if so.catching {
		so.closeWith = msg
		so.mu.Unlock()
		return
	}
	so.mu.Unlock()
	_ = so.s.CloseWithMsg(msg)
}

// frameOf renders the frame of a room event, and its room.
func (h *hub) frameOf(e eventstore.RecordedEvent, base string) ([]byte, int64, bool) {
	if !strings.HasPrefix(e.Stream, "conversation-") && !strings.HasPrefix(e.Stream, "receipts-") {
		return nil, 0, false
	}
	ev, md, ok, err := projections.Decode(h.srv.cmd.Registry(), e)
	if err != nil || !ok {
		return nil, 0, false
	}
	pos := e.Position.String()
	var v any
	var room int64
	switch ev := ev.(type) {
	case domain.MessageSent:
		room = ev.ConversationID
		mv := sentMessageView(ev, md.Time, func(key string) string { return base + "/media/" + key + "/" })
		v = struct {
			Type string `json:"type"`
			messageView
			Position string `json:"position"`
		}{"message", mv, pos}
	case domain.MessagesRead:
		room = ev.ConversationID
		v = map[string]any{"type": "read", "conversation": room, "reader": ev.ReaderID, "message_ids": ev.MessageIDs, "position": pos}
	case domain.MemberJoined:
		room = ev.ConversationID
		v = map[string]any{"type": "member_joined", "conversation": room, "user": ev.UserID, "position": pos}
	case domain.MemberLeft:
		room = ev.ConversationID
		v = map[string]any{"type": "member_left", "conversation": room, "user": ev.UserID, "position": pos}
	default:
		return nil, 0, false
	}
	b, err := json.Marshal(v)
	return b, room, err == nil
}

func errorFrame(detail string) []byte {
	b, _ := json.Marshal(map[string]string{"type": "error", "detail": detail})
	return b
}

// run fans the log out to sockets, starting after from, until ctx ends.
// from must be at or before the watermark any socket can have seen when it
// starts catching up (the caller reads it before serving), or an event
// between the two would reach neither the socket's catch-up nor fan-out.
func (h *hub) run(ctx context.Context, from eventstore.Position) error {
	go h.listen(ctx)
	go h.trackLag(ctx)
	for {
		err := h.follow(ctx, &from)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.srv.log.Error("websocket fan-out stopped, restarting", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (h *hub) follow(ctx context.Context, from *eventstore.Position) error {
	return h.srv.store.SubscribeAll(ctx, *from, func(ctx context.Context, d eventstore.Delivery) error {
		if len(d.Events) == 0 {
			return nil
		}
		// Only after the read model shows them.
		if err := h.srv.wm.Wait(ctx, d.Events[len(d.Events)-1].Position); err != nil {
			return err
		}
		for _, e := range d.Events {
			h.broadcast(e)
			*from = e.Position // a restart goes on from here
		}
		return nil
	})
}

func (h *hub) broadcast(e eventstore.RecordedEvent) {
	var room int64
	if !parseRoom(e.Stream, &room) {
		return
	}
	sockets := h.roomSockets(room)
	if len(sockets) == 0 {
		return
	}
	leaver, joiner := membershipChange(e)
	frames := map[string][]byte{}
	for _, so := range sockets {
		f, ok := frames[so.base]
		if !ok {
			f, _, ok = h.frameOf(e, so.base)
			if !ok {
				return
			}
			frames[so.base] = f
		}
		h.deliver(so, positioned{pos: e.Position, frame: f, leaver: leaver, joiner: joiner})
	}
	if e.Type == domain.TypeMemberLeft {
		var left domain.MemberLeft
		if json.Unmarshal(e.Data, &left) == nil {
			for _, so := range sockets {
				if so.user == left.UserID {
					h.closeAfterFrames(so, leftClose)
				}
			}
		}
	}
}

// parseRoom reads the room id of conversation-<id> and receipts-<id>-<reader> streams.
func parseRoom(stream string, room *int64) bool {
	var rest string
	switch {
	case strings.HasPrefix(stream, "conversation-"):
		rest = stream[len("conversation-"):]
	case strings.HasPrefix(stream, "receipts-"):
		rest, _, _ = strings.Cut(stream[len("receipts-"):], "-")
	default:
		return false
	}
	var n int64
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int64(r-'0')
	}
	*room = n
	return n > 0
}

// inbound is a client frame.
type inbound struct {
	Type         string          `json:"type"`
	Text         *string         `json:"text"`
	Conversation json.RawMessage `json:"conversation"`
	IsTyping     *bool           `json:"is_typing"`
	MessageIDs   json.RawMessage `json:"message_ids"`
	ClientID     string          `json:"client_id"`
}

func (h *hub) onFrame(ms *melody.Session, msg []byte) {
	so := h.socketOf(ms)
	if so == nil {
		return
	}
	if !so.allow() {
		h.write(so, errorFrame("Too many frames; slow down."))
		return
	}
	var in inbound
	if err := json.Unmarshal(msg, &in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			h.write(so, errorFrame(typeErr.Field+": Not a valid "+jsonKind(typeErr.Type.Kind())+"."))
			return
		}
		h.write(so, errorFrame("Frames must be JSON objects."))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := commands.Actor{UserID: so.user, RequestID: "ws-" + uuid.NewString()}
	var err error
	switch in.Type {
	case "message":
		if len(in.Conversation) > 0 && string(in.Conversation) != "null" {
			if id, ok := parseInt(in.Conversation); !ok || id != so.room {
				h.write(so, errorFrame("conversation does not match this socket's room."))
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
		_, err = h.srv.cmd.SendMessage(ctx, a, commands.SendMessage{
			ConversationID: so.room, Content: domain.MessageContent{Text: text}, IdempotencyKey: in.ClientID,
		})
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
			_, err = h.srv.cmd.MarkRead(ctx, a, commands.MarkRead{ConversationID: so.room, MessageIDs: ids})
		}
	case "typing":
		typing := in.IsTyping == nil || *in.IsTyping
		err = h.typing(ctx, so, typing)
	default:
		err = domain.Errorf(domain.KindInvalid, "Unknown frame type %q.", in.Type)
	}
	if err != nil {
		err = unavailable(err, h.srv.cfg.Unreachable)
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
			h.srv.log.Error("websocket frame failed", "type", in.Type, "err", err)
		}
		h.write(so, errorFrame(detail))
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

// allow takes one token of the socket's inbound rate limit.
func (so *socket) allow() bool {
	so.mu.Lock()
	defer so.mu.Unlock()
	now := time.Now()
	so.tokens = min(2*framesPerSecond, so.tokens+now.Sub(so.refill).Seconds()*framesPerSecond)
	so.refill = now
	if so.tokens < 1 {
		return false
	}
	so.tokens--
	return true
}

type control struct {
	Kind     string `json:"kind"` // "typing" or "logout"
	Room     int64  `json:"room,omitempty"`
	User     int64  `json:"user,omitempty"`
	IsTyping bool   `json:"is_typing,omitempty"`
	Session  string `json:"session,omitempty"`
}

// typing tells the room's sockets on every process, through NOTIFY. Typing
// notices are ephemeral: they never enter the log. At most one "typing"
// per socket every 300 ms goes out.
func (h *hub) typing(ctx context.Context, so *socket, isTyping bool) error {
	so.mu.Lock()
	if isTyping && time.Since(so.typedAt) < 300*time.Millisecond {
		so.mu.Unlock()
		return nil
	}
	so.typedAt = time.Now()
	so.mu.Unlock()
	return h.notify(ctx, control{Kind: "typing", Room: so.room, User: so.user, IsTyping: isTyping})
}

func (h *hub) notify(ctx context.Context, c control) error {
	b, _ := json.Marshal(c)
	_, err := h.srv.cfg.Pool.Exec(ctx, `SELECT pg_notify($1, $2)`, ControlChannel, string(b))
	return err
}

// endSession closes the sockets of a logged-out session on every process.
func (h *hub) endSession(ctx context.Context, session uuid.UUID) {
	h.closeSession(session)
	if err := h.notify(ctx, control{Kind: "logout", Session: session.String()}); err != nil {
		h.srv.log.Error("announce logout", "err", err)
	}
}

func (h *hub) closeSession(session uuid.UUID) {
	h.mu.Lock()
	var victims []*socket
	for _, so := range h.byS {
		if so.session == session {
			victims = append(victims, so)
		}
	}
	h.mu.Unlock()
	for _, so := range victims {
		_ = so.s.CloseWithMsg(melody.FormatCloseMessage(websocket.ClosePolicyViolation, "logged out"))
	}
}

// listen receives control notices from every process (this one included).
func (h *hub) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		h.srv.log.Warn("websocket control listener lost", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (h *hub) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, h.srv.cfg.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ControlChannel}.Sanitize()); err != nil {
		return err
	}
	// Logouts may have been announced while no listener ran.
	h.srv.tokens.forgetAll()
	h.listeningOnce.Do(func() { close(h.listening) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var c control
		if json.Unmarshal([]byte(n.Payload), &c) != nil {
			continue
		}
		switch c.Kind {
		case "typing":
			frame, _ := json.Marshal(map[string]any{"type": "typing", "conversation": c.Room, "sender": c.User, "is_typing": c.IsTyping})
			// Typing is ephemeral and has no place in the log's order, so a
			// socket that is still catching up gets it at once too.
			for _, so := range h.roomSockets(c.Room) {
				if so.user != c.User {
					h.write(so, frame)
				}
			}
		case "logout":
			if id, err := uuid.Parse(c.Session); err == nil {
				h.srv.tokens.forget(id)
				h.closeSession(id)
			}
		}
	}
}

// trackLag remembers when the watermark last moved, for /readyz.
func (h *hub) trackLag(ctx context.Context) {
	for {
		ch := h.srv.wm.Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
			h.lagMu.Lock()
			h.advancedAt = time.Now()
			h.lagMu.Unlock()
		}
	}
}

// projectionLag is how long the read model has been behind head (0 when caught up).
func (h *hub) projectionLag(head eventstore.Position) time.Duration {
	if !h.srv.wm.Position().Less(head) {
		return 0
	}
	h.lagMu.Lock()
	defer h.lagMu.Unlock()
	return time.Since(h.advancedAt)
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
	for h.open() > 0 && ctx.Err() == nil {
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

// open returns the number of sockets not yet disconnected.
func (h *hub) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byS)
}
