package chatd

import (
	"context"
	"net"
	"path/filepath"
	"time"

	"github.com/evchat/evchat/domain"
	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/internal/ratelimit"
	"github.com/evchat/evchat/realtime"
)

// Config is everything the server is told. DefaultConfig holds every
// default; New fills each field left at its zero value from it.
type Config struct {
	Addr          string // CHAT_ADDR
	DatabaseURL   string // DATABASE_URL; empty: embedded PostgreSQL in DataDir
	DataDir       string // CHAT_DATA_DIR
	EventStoreURL string // EVENTSTORE_URL (esdb://...); empty: the PostgreSQL store
	JWTKeyFile    string // CHAT_JWT_KEY_FILE; empty: DataDir/jwt-ed25519.pem
	PublicURL     string // CHAT_PUBLIC_URL
	MaxGroup      int    // CHAT_MAX_GROUP_MEMBERS
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
	// RefreshReuseGrace (CHAT_REFRESH_REUSE_GRACE) is how long after a
	// refresh the rotated-away refresh token may come back with a plain
	// 401; later, its use ends the session.
	RefreshReuseGrace time.Duration
	BcryptCost        int
	Origins           []string
	// ReadyLag (CHAT_READY_LAG) is how long the read model may lag the log
	// before /readyz answers 503.
	ReadyLag time.Duration
	// ProjectionWait bounds a write's read-your-writes wait.
	ProjectionWait time.Duration
	// IDsWait bounds, after a start on a read model behind the log, a
	// write's wait for the id sequences to pass the log. Left zero, it is
	// ProjectionWait when that is set, so one setting shortens both.
	IDsWait time.Duration
	// TrustedProxies (CHAT_TRUSTED_PROXIES) are CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []*net.IPNet
	// MaxPicture and MaxVideo bound attachments in bytes.
	MaxPicture, MaxVideo int64
	// JSONBodyLimit bounds JSON request bodies in bytes.
	JSONBodyLimit int64
	// SnapshotEvery is the number of events between conversation snapshots.
	SnapshotEvery int
	// Login attempts within LoginWindow: per username and address
	// (refused beyond), per address (refused beyond), per username from
	// anywhere (slowed beyond: one attempt per delay, doubling up to
	// LoginMaxDelay). See auth.ThrottleConfig.
	LoginWindow                                        time.Duration
	LoginPerUserAddress, LoginPerAddress, LoginPerUser int
	LoginMaxDelay                                      time.Duration
	// LeaderRetry is how often a process that does not hold the projector's
	// lease tries to take it.
	LeaderRetry time.Duration
	// WebSocket limits. ResumeMax (CHAT_RESUME_MAX) is how many of its
	// room's events a socket may resume (?since=) behind.
	ResumeMax int
	// SocketsPerUser (CHAT_WS_PER_USER) and SocketsMax (CHAT_WS_MAX) bound
	// the WebSockets of one user and of one process.
	SocketsPerUser, SocketsMax int
	// TypingInterval (CHAT_TYPING_INTERVAL) is how often one user's typing
	// notices reach a room.
	TypingInterval time.Duration

	// MaxFormParts (CHAT_MAX_FORM_PARTS) bounds the parts of a multipart
	// send-message form; MaxFormField (CHAT_MAX_FORM_FIELD) the bytes of
	// each of its fields other than text and the attachments.
	MaxFormParts int
	MaxFormField int64
	// RegisterRate (CHAT_RATE_REGISTER) bounds registrations per client
	// address (an IPv6 /64); SendRate (CHAT_RATE_SEND) and ReadRate
	// (CHAT_RATE_READ) bound sends and read receipts per user, REST and
	// WebSocket together. ratelimit.Off turns one off. Each process
	// counts on its own.
	RegisterRate, SendRate, ReadRate ratelimit.Limit
	// CORSOrigins (CHAT_CORS_ORIGINS) may call the API from browser pages
	// of another origin, with bearer tokens; none by default.
	CORSOrigins []string
	// A request body must start within BodyTimeout (CHAT_BODY_TIMEOUT) and
	// then arrive at BodyMinRate (CHAT_BODY_MIN_RATE) bytes a second on
	// average, or it is answered 408. ReadHeaderTimeout
	// (CHAT_READ_HEADER_TIMEOUT) bounds a request's headers, IdleTimeout
	// (CHAT_IDLE_TIMEOUT) a kept-alive connection's wait for the next.
	BodyTimeout                    time.Duration
	BodyMinRate                    int64
	ReadHeaderTimeout, IdleTimeout time.Duration
	// InviteTTL (CHAT_INVITE_TTL) is how long an invite to an invite-only
	// group admits.
	InviteTTL time.Duration
	// MetricsAddr (CHAT_METRICS_ADDR), when set, is the address that alone
	// serves /metrics; empty: /metrics is served on Addr.
	MetricsAddr string
	// Delivery receipts are appended in bulk: when DeliveryBatch
	// (CHAT_DELIVERY_BATCH) message ids are pending, or DeliveryFlush
	// (CHAT_DELIVERY_FLUSH) after the first. A user counts as offline
	// PresenceDebounce (CHAT_PRESENCE_DEBOUNCE) after their last socket
	// closed; each process heartbeats every PresenceHeartbeat
	// (CHAT_PRESENCE_HEARTBEAT), and one silent for three is forgotten.
	DeliveryBatch                                      int
	DeliveryFlush, PresenceDebounce, PresenceHeartbeat time.Duration
	// SearchOff (CHAT_SEARCH_OFF) runs no search projector and answers
	// /search/ with 503; turning it on later backfills the index from the
	// log while the server serves.
	SearchOff bool
	// AdminToken (CHAT_ADMIN_TOKEN), when set, admits operators to the
	// /admin/ routes (DELETE /admin/users/<id>/ forgets a user) with
	// Authorization: Bearer <token>; empty: those routes answer 404.
	AdminToken string
	// Hooks are for tests; a production server leaves them zero.
	Hooks TestHooks

	// ReadWait (CHAT_READ_WAIT) is what a read waits for so that it shows
	// its caller's writes, which answer before the projection: the log's
	// head (chathttp.ReadWaitHead, the default and the zero value: right
	// with any number of processes) or the caller's last write through this
	// process (ReadWaitUser: one process, or a balancer that keeps each user
	// on one). A client that echoes X-Chat-Position needs neither.
	ReadWait chathttp.ReadWait
	// ReadWaiting is a test hook: it runs when a read is about to wait for
	// the projection to show its caller's writes.
	ReadWaiting func(user int64)
}

// TestHooks let tests observe and steer a server at named points. None of
// them is set by cmd/chatd.
type TestHooks struct {
	// ProjectorBeforeCommit runs inside each projector batch transaction
	// before it commits.
	ProjectorBeforeCommit func(ctx context.Context) error
	// SearchBeforeCommit runs inside each search projector batch
	// transaction before it commits.
	SearchBeforeCommit func(ctx context.Context) error
	// SocketHook runs at the named points of a WebSocket's life.
	SocketHook func(point chathttp.SocketPoint, user, room int64)
	// APILog, when set, wraps the log the API and its WebSockets read
	// (tests count the reads of a resume with it).
	APILog func(chathttp.Log) chathttp.Log
	// Clock, when set, is the clock of WebSockets (token expiry, typing)
	// and of the tokens they are opened with.
	Clock realtime.Clock
	// FastEmbedded turns off fsync in the embedded PostgreSQL.
	FastEmbedded bool
	// AuditPage is the number of events the audit endpoint reads from
	// the log at a time; zero: its default.
	AuditPage int
	// EventStorePrefix isolates tests that share one EventStoreDB server:
	// every stream name is prefixed with it.
	EventStorePrefix string
	// Now, when set, is the clock of the commands (event times, invite
	// expiry) and of the request rate limits.
	Now func() time.Time
	// WSWriteWait, when set, is how long a write to a WebSocket may block
	// before the socket is closed (default 5 s).
	WSWriteWait time.Duration
	// QuietRooms records no delivery receipts and sends no presence
	// frames: for tests that expect exact frame sequences and lists that
	// do not change by being listed.
	QuietRooms bool
	// KeyCreated runs after the shredder stores a new user key and before
	// the append that needs it; an error aborts that append (a crash).
	KeyCreated func(ctx context.Context, user int64) error
}

// DefaultConfig is the configuration of a server told nothing: the one
// place that holds every default. JWTKeyFile, left empty, is found in
// DataDir.
func DefaultConfig() Config {
	return Config{
		Addr:              "127.0.0.1:8000",
		DataDir:           ".data",
		MaxGroup:          domain.DefaultLimits().MaxGroupMembers,
		AccessTTL:         15 * time.Minute,
		RefreshTTL:        7 * 24 * time.Hour,
		RefreshReuseGrace: 10 * time.Second,
		BcryptCost:        10,
		ReadyLag:          30 * time.Second,
		ProjectionWait:    5 * time.Second,
		IDsWait:           2 * time.Second,
		MaxPicture:        10 << 20,
		MaxVideo:          100 << 20,
		JSONBodyLimit:     1 << 20,
		SnapshotEvery:     1000,
		LeaderRetry:       time.Second,
		ResumeMax:         realtime.DefaultResumeMax,
		SocketsPerUser:    realtime.DefaultPerUser,
		SocketsMax:        realtime.DefaultMax,
		TypingInterval:    realtime.DefaultTypingInterval,
		InviteTTL:         7 * 24 * time.Hour,
		DeliveryBatch:     500,
		DeliveryFlush:     200 * time.Millisecond,
		PresenceDebounce:  realtime.DefaultPresenceDebounce,
		PresenceHeartbeat: 10 * time.Second,

		LoginWindow:         15 * time.Minute,
		LoginPerUserAddress: 5,
		LoginPerAddress:     50,
		LoginPerUser:        10,
		LoginMaxDelay:       30 * time.Second,

		MaxFormParts: 16,
		MaxFormField: 4 << 10,
		// A classroom behind one NAT address can sign up at once; a
		// script gets 20 accounts an hour per address.
		RegisterRate: ratelimit.Limit{Rate: 20.0 / 3600, Burst: 20},
		// Nobody types 10 messages a second; a client flushing an
		// offline outbox sends its 50 at once.
		SendRate: ratelimit.Limit{Rate: 10, Burst: 50},
		// Read receipts follow scrolling; each may carry many ids.
		ReadRate: ratelimit.Limit{Rate: 10, Burst: 50},
		// 4 KiB/s is 32 kbit/s: a 100 MiB video may take over seven hours
		// and still not be cut; a trickling client must pay in bandwidth.
		BodyTimeout:       15 * time.Second,
		BodyMinRate:       4 << 10,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// withDefaults fills the fields left at their zero value (or below it)
// from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.IDsWait <= 0 && c.ProjectionWait > 0 {
		c.IDsWait = c.ProjectionWait
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.AccessTTL, &d.AccessTTL}, {&c.RefreshTTL, &d.RefreshTTL}, {&c.RefreshReuseGrace, &d.RefreshReuseGrace}, {&c.ReadyLag, &d.ReadyLag},
		{&c.ProjectionWait, &d.ProjectionWait}, {&c.IDsWait, &d.IDsWait}, {&c.LeaderRetry, &d.LeaderRetry},
		{&c.InviteTTL, &d.InviteTTL},
		{&c.DeliveryFlush, &d.DeliveryFlush}, {&c.PresenceDebounce, &d.PresenceDebounce}, {&c.PresenceHeartbeat, &d.PresenceHeartbeat},
		{&c.LoginWindow, &d.LoginWindow}, {&c.LoginMaxDelay, &d.LoginMaxDelay},
		{&c.TypingInterval, &d.TypingInterval},
		{&c.BodyTimeout, &d.BodyTimeout}, {&c.ReadHeaderTimeout, &d.ReadHeaderTimeout}, {&c.IdleTimeout, &d.IdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *int }{
		{&c.MaxGroup, &d.MaxGroup}, {&c.BcryptCost, &d.BcryptCost}, {&c.SnapshotEvery, &d.SnapshotEvery},
		{&c.LoginPerUserAddress, &d.LoginPerUserAddress}, {&c.LoginPerAddress, &d.LoginPerAddress}, {&c.LoginPerUser, &d.LoginPerUser},
		{&c.ResumeMax, &d.ResumeMax}, {&c.SocketsPerUser, &d.SocketsPerUser}, {&c.SocketsMax, &d.SocketsMax},
		{&c.MaxFormParts, &d.MaxFormParts},
		{&c.DeliveryBatch, &d.DeliveryBatch},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *int64 }{{&c.MaxPicture, &d.MaxPicture}, {&c.MaxVideo, &d.MaxVideo}, {&c.JSONBodyLimit, &d.JSONBodyLimit},
		{&c.MaxFormField, &d.MaxFormField}, {&c.BodyMinRate, &d.BodyMinRate}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *ratelimit.Limit }{{&c.RegisterRate, &d.RegisterRate}, {&c.SendRate, &d.SendRate}, {&c.ReadRate, &d.ReadRate}} {
		if f.v.IsZero() {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *string }{{&c.Addr, &d.Addr}, {&c.DataDir, &d.DataDir}} {
		if *f.v == "" {
			*f.v = *f.def
		}
	}
	if c.JWTKeyFile == "" {
		c.JWTKeyFile = filepath.Join(c.DataDir, "jwt-ed25519.pem")
	}
	return c
}
