package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/ratelimit"
	"github.com/evchat/evchat/realtime"
	"github.com/evchat/evchat/web"
)

// Database is the read-model database as the API checks it.
type Database interface {
	Ping(ctx context.Context) error
}

// Log is the part of the event log the API reads: the audit trail, health,
// and the WebSocket fan-out (realtime.Log).
type Log interface {
	realtime.Log
	ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from uint64, count int) ([]eventstore.RecordedEvent, error)
	Head(ctx context.Context) (eventstore.Position, error)
	Ping(ctx context.Context) error
}

// Config wires a Server. Every field without a "zero:" note is required;
// the defaults live in one place, the composition root (chatd.DefaultConfig).
type Config struct {
	Database  Database
	Log       Log
	Commands  Commands
	ReadModel Queries
	// Watermark tells how far the read model is projected.
	Watermark realtime.Watermark
	Media     Storage
	Tokens    Tokens
	Throttle  LoginThrottle
	Passwords Passwords
	Logger    *slog.Logger
	// Credentials holds the password hashes login checks.
	Credentials Credentials

	// PublicURL, when set, is the base of attachment URLs; zero: the
	// request's scheme and host are used.
	PublicURL string
	// JSONBodyLimit bounds JSON bodies.
	JSONBodyLimit int64
	// MaxPicture, MaxVideo bound attachments.
	MaxPicture, MaxVideo int64
	// ProjectionWait bounds the read-your-writes wait.
	ProjectionWait time.Duration
	// ReadyLag is how long the projection may lag the log before /readyz fails.
	ReadyLag time.Duration
	// AllowedOrigins may open WebSockets with the login cookie.
	AllowedOrigins []string
	// TrustedProxies are the networks (CIDR) whose X-Forwarded-For header is
	// believed for the client address (login throttling, logs). Zero: the
	// address is the connection's.
	TrustedProxies []*net.IPNet
	// Unreachable reports whether an error is a failure to reach the
	// database (the composition root passes pgerr.Unreachable). Such
	// errors, like the event store's eventstore.ErrUnavailable, answer 503
	// with Retry-After instead of 500.
	Unreachable func(error) bool
	// SocketHook, when set, is called at each SocketPoint of a WebSocket's
	// start, with the socket's user and room (a test hook: tests order
	// events against the handshake with it).
	SocketHook func(point SocketPoint, user, room int64)
	// Bus carries typing notices between processes; zero: this process only.
	Bus realtime.Bus

	// WebSocket limits (zero: the realtime package's defaults).
	// ResumeMax is how many of its room's events a socket may resume
	// (?since=) behind before it is refused with resume_too_old.
	ResumeMax int
	// SocketsPerUser and SocketsMax bound the sockets of one user and of
	// this process; the next is closed after the upgrade (1008, 1013).
	SocketsPerUser, SocketsMax int
	// TypingInterval is how often one user's typing notices reach a room.
	TypingInterval time.Duration
	// Clock tells sockets the time (token expiry, typing); zero: the system's.
	Clock realtime.Clock
	// WriteWait is how long a write to a socket may block before the
	// socket is closed; zero: 5 s.
	WriteWait time.Duration
	// MaxFormParts bounds the parts of a multipart send-message form and
	// MaxFormField the bytes of each of its fields other than text and
	// the attachments.
	MaxFormParts int
	MaxFormField int64
	// RegisterLimit (per client address), SendLimit and ReadLimit (per
	// user, REST and WebSocket together) bound those requests; zero: none.
	RegisterLimit, SendLimit, ReadLimit ratelimit.Limit
	// Now is the rate limits' clock; zero: time.Now.
	Now func() time.Time
	// AuditPage is the number of events the audit endpoint reads from the
	// log at a time; zero: 100.
	AuditPage int
	// CORSOrigins may call the API from a browser page of another origin
	// (CORS, bearer tokens only); zero: none.
	CORSOrigins []string
	// A request body must start within BodyTimeout and then arrive at
	// BodyMinRate bytes a second on average, or it is answered 408 and its
	// connection closed; zero (either): no bound.
	BodyTimeout time.Duration
	BodyMinRate int64
	// Observer is told of every request and WebSocket frame (metrics);
	// zero: nothing is observed.
	Observer Observer
	// Metrics, when set, is served at /metrics; zero: /metrics is 404 (the
	// metrics have a listener of their own, or none).
	Metrics http.Handler

	// Deliveries records delivery receipts; zero: none are recorded.
	Deliveries Deliveries
	// Presence keeps who is online; zero: nobody is (no presence frames).
	// PresenceDebounce is how long a user's last socket may be gone before
	// they count as offline, PresenceHeartbeat how often this process tells
	// Presence it is alive (zero: the realtime package's defaults).
	Presence                            Presence
	PresenceDebounce, PresenceHeartbeat time.Duration
	// Search answers GET /search/; zero: search is off (503).
	Search Searcher
	// ChatPaused reports whether an operator paused the chat projection
	// (chatctl projections pause chat): its lag is then deliberate and
	// /readyz stays ready; zero: never paused.
	ChatPaused func(ctx context.Context) (bool, error)
	// ReadWait is how a read that must show its caller's writes finds how
	// far to wait for the projection (see readwait.go); zero: ReadWaitHead.
	// WriteMarks keeps each user's last unprojected write of this process;
	// nil: none are kept (ReadWaitUser then relies on X-Chat-Position).
	// ReadWaiting, a test hook, is called when a read is about to wait for
	// the projection.
	ReadWait    ReadWait
	WriteMarks  *WriteMarks
	ReadWaiting func(user int64)
	// AdminToken, when set, admits operators to the /admin/ routes with
	// Authorization: Bearer <it>; Forgetter forgets users there. Zero
	// (either): the admin routes answer 404.
	AdminToken string
	Forgetter  Forgetter
	// Past answers ?as_of= from the log; zero: time travel is off (503).
	Past Past
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg         Config
	echo        *echo.Echo
	log         *slog.Logger
	cmd         Commands
	rm          Queries
	store       Log
	heads       *heads // shared look-ups of store's head
	tokens      Tokens
	throttle    LoginThrottle
	passwords   Passwords
	credentials Credentials
	media       Storage
	wm          realtime.Watermark
	hub         *hub
	lim         limiters
	observer    Observer
}

// New returns a Server with every route of the API.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, cmd: cfg.Commands, rm: cfg.ReadModel, store: cfg.Log,
		tokens: cfg.Tokens, throttle: cfg.Throttle, passwords: cfg.Passwords, credentials: cfg.Credentials,
		media: cfg.Media, wm: cfg.Watermark, lim: newLimiters(cfg), observer: cfg.Observer,
	}
	if s.observer == nil {
		s.observer = nopObserver{}
	}
	if cfg.Log != nil {
		s.heads = newHeads(cfg.Log.Head)
	}
	s.hub = newHub(s)
	s.echo = s.routes()
	return s
}

// OpenSockets is the number of this process's WebSockets that hear their
// room (metrics).
func (s *Server) OpenSockets() int { return s.hub.rt.Open() }

// CloseSession closes this process's WebSockets of a session that ended
// (auth.Config.OnRevoke).
func (s *Server) CloseSession(session uuid.UUID) { s.hub.rt.CloseSession(session) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(s.log, s.cfg.Unreachable)
	e.IPExtractor = echo.ExtractIPDirect()
	if len(s.cfg.TrustedProxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range s.cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	// Paths keep their trailing slash; a request without it is served the
	// same, without a redirect (a redirect would turn a POST into a GET).
	e.Pre(middleware.AddTrailingSlash())
	e.Pre(dropMalformedRequestID)
	if cors := s.cors(); cors != nil {
		e.Pre(cors) // before routing: a preflight OPTIONS has no route
	}
	e.Use(middleware.RequestID())
	e.Use(nosniff)
	e.Use(s.recoverer)
	e.Use(s.observe)
	e.Use(s.slowBodies)

	json := middleware.BodyLimit(limitString(s.cfg.JSONBodyLimit))
	auth := s.requireAuth

	for _, p := range []string{"/auth/register/", "/register/"} {
		e.POST(p, s.register, json, noStore)
	}
	for _, p := range []string{"/auth/login/", "/login/"} {
		e.POST(p, s.login, json, noStore)
	}
	e.POST("/auth/refresh/", s.refresh, json, noStore)
	for _, p := range []string{"/auth/logout/", "/logout/"} {
		e.POST(p, s.logout, json, auth)
	}

	e.POST("/create-chatroom/", s.createChatroom, json, auth)
	e.POST("/join-chatroom/", s.joinChatroom, json, auth)
	e.POST("/chatrooms/:id/invites/", s.createInvite, auth)
	e.GET("/list-chatrooms/", s.listChatrooms, auth)
	e.DELETE("/leave-chatroom/:id/", s.leaveChatroom, auth)
	// Group administration and presence (rooms.go, presence.go).
	e.PATCH("/chatrooms/:id/", s.updateChatroom, json, auth)
	e.POST("/chatrooms/:id/members/", s.addMember, json, auth)
	e.DELETE("/chatrooms/:id/members/:user/", s.removeMember, auth)
	e.POST("/chatrooms/:id/admins/", s.promoteAdmin, json, auth)
	e.GET("/users/:id/presence/", s.userPresence, auth)

	e.POST("/send-message/", s.sendMessage, auth) // its own limits: JSON or multipart
	e.GET("/list-messages/", s.listMessages, auth)
	e.GET("/list-conversation-messages/:id/", s.listConversationMessages, auth)
	e.POST("/read-message/", s.readMessage, json, auth)
	// A message's life after its send (message_life.go).
	e.GET("/messages/:id/", s.getMessage, auth)
	e.PATCH("/messages/:id/", s.editMessage, json, auth)
	e.DELETE("/messages/:id/", s.deleteMessage, auth)
	e.GET("/messages/:id/history/", s.messageHistory, auth)
	e.PUT("/messages/:id/reactions/:emoji/", s.addReaction, auth)
	e.DELETE("/messages/:id/reactions/:emoji/", s.removeReaction, auth)

	e.GET("/media/:key/", s.serveMedia, auth)
	e.HEAD("/media/:key/", s.serveMedia, auth)
	e.GET("/audit/conversations/:id/", s.auditConversation, auth)
	e.GET("/search/", s.search, auth)
	e.GET("/ws/chat/:id/", s.serveWS)

	// Operators only (CHAT_ADMIN_TOKEN); 404 when none is configured.
	e.DELETE("/admin/users/:id/", s.forgetUser, s.requireAdmin)

	e.GET("/healthz/", s.healthz)
	e.GET("/readyz/", s.readyz)
	e.GET("/metrics/", s.serveMetrics)
	s.docsRoutes(e)
	webClient(e)
	return e
}

// maxRequestID bounds a client's X-Request-Id: it is stored in the
// metadata of every event the request causes.
const maxRequestID = 64

// dropMalformedRequestID removes a client's X-Request-Id unless it is
// short and made of letters, digits, '.', '_' and '-', so the id that
// RequestID then keeps or generates is always fit for the log and the
// audit trail (no megabytes, no control characters, no fake log fields).
func dropMalformedRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !wellFormedRequestID(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

func wellFormedRequestID(id string) bool {
	if len(id) > maxRequestID {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// nosniff stops browsers from guessing a response's type: an uploaded
// file or a JSON answer is never run as a script or page.
func nosniff(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}

// noStore keeps answers that carry tokens out of every cache (RFC 6749
// section 5.1).
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		return next(c)
	}
}

// webClient serves the browser chat client: its page at / and its files
// under web.AppPrefix. The trailing slash that every API path gets added is
// taken off again for those: they are files.
func webClient(e *echo.Echo) {
	app := web.App()
	h := echo.WrapHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != web.AppPrefix && strings.HasPrefix(p, web.AppPrefix) {
			r.URL.Path, r.URL.RawPath = strings.TrimSuffix(p, "/"), strings.TrimSuffix(r.URL.RawPath, "/")
		}
		app.ServeHTTP(w, r)
	}))
	for _, p := range []string{"/", web.AppPrefix + "*"} {
		e.GET(p, h)
		e.HEAD(p, h)
	}
}

func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("panic in handler", "path", c.Path(), "panic", r)
				err = errors.New("panic in handler")
			}
		}()
		return next(c)
	}
}

// Shutdown closes every WebSocket with a going-away close frame.
func (s *Server) Shutdown(ctx context.Context) error { return s.hub.close(ctx) }

// Listening is closed once the server hears typing notices and logouts
// from other processes; serve after it, or the first few may be missed.
func (s *Server) Listening() <-chan struct{} { return s.hub.rt.Listening() }

// Run fans room events out to WebSockets, from the log position from, and
// blocks until ctx ends. Call it with the read model's checkpoint as read
// before the server takes requests, and advance the watermark to it first.
func (s *Server) Run(ctx context.Context, from eventstore.Position) error {
	return s.hub.rt.Run(ctx, from)
}

// actor is the command actor of a request.
func actor(c echo.Context) commands.Actor {
	return commands.Actor{UserID: caller(c).UserID, RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
}

// waitProjected waits, bounded, until the read model shows position p, so
// that the caller's next read shows its write.
//
// When the wait runs out, the write is in the log but the caller's next
// read may not show it. If the projector cannot reach the database or the
// event store, that is an outage: the answer is 503 (the write stands; a
// retry with the same Idempotency-Key returns it). A projector that is only
// behind does not fail the write: it is logged, and the write answers.
func (s *Server) waitProjected(c echo.Context, p eventstore.Position) error {
	if p.IsZero() {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ProjectionWait)
	defer cancel()
	if err := s.wm.Wait(ctx, p); err == nil || c.Request().Context().Err() != nil {
		return nil // projected, or nobody waits for the answer any more
	}
	if err := s.reachable(c.Request().Context()); err != nil {
		return fmt.Errorf("%w: the read model did not reach %s: %w", domain.ErrUnavailable, p, err)
	}
	s.log.Warn("read model did not catch up in time", "position", p.String(), "waited", s.cfg.ProjectionWait)
	return nil
}

// reachablePing bounds each ping of reachable.
const reachablePing = time.Second

// reachable pings the database and the event store, each bounded.
func (s *Server) reachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, reachablePing)
	defer cancel()
	if err := s.cfg.Database.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("event store: %w", err)
	}
	return nil
}

// baseURL is the base of every absolute URL the API hands out (attachments,
// Link headers): PublicURL when set, otherwise the request's scheme and host.
func (s *Server) baseURL(c echo.Context) string {
	if s.cfg.PublicURL != "" {
		return trimSlash(s.cfg.PublicURL)
	}
	return c.Scheme() + "://" + c.Request().Host
}

// mediaURLs returns the attachment URL maker for a request.
func (s *Server) mediaURLs(c echo.Context) mediaURL { return mediaAt(s.baseURL(c)) }

// mediaAt returns the attachment URL maker for the API at base.
func mediaAt(base string) mediaURL {
	return func(key string) string { return base + "/media/" + key + "/" }
}

func limitString(n int64) string {
	return itoa(n) + "B"
}
