package chatd

import (
	"context"
	"net"
	"path/filepath"
	"time"

	"github.com/evchat/evchat/domain"
	chathttp "github.com/evchat/evchat/http"
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
	BcryptCost    int
	Origins       []string
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
	// MetricsAddr (CHAT_METRICS_ADDR), when set, is the address that alone
	// serves /metrics; empty: /metrics is served on Addr.
	MetricsAddr string
	// Hooks are for tests; a production server leaves them zero.
	Hooks TestHooks
}

// TestHooks let tests observe and steer a server at named points. None of
// them is set by cmd/chatd.
type TestHooks struct {
	// ProjectorBeforeCommit runs inside each projector batch transaction
	// before it commits.
	ProjectorBeforeCommit func(ctx context.Context) error
	// SocketHook runs at the named points of a WebSocket's life.
	SocketHook func(point chathttp.SocketPoint, user, room int64)
	// FastEmbedded turns off fsync in the embedded PostgreSQL.
	FastEmbedded bool
	// EventStorePrefix isolates tests that share one EventStoreDB server:
	// every stream name is prefixed with it.
	EventStorePrefix string
}

// DefaultConfig is the configuration of a server told nothing: the one
// place that holds every default. JWTKeyFile, left empty, is found in
// DataDir.
func DefaultConfig() Config {
	return Config{
		Addr:           "127.0.0.1:8000",
		DataDir:        ".data",
		MaxGroup:       domain.DefaultLimits().MaxGroupMembers,
		AccessTTL:      15 * time.Minute,
		RefreshTTL:     7 * 24 * time.Hour,
		BcryptCost:     10,
		ReadyLag:       30 * time.Second,
		ProjectionWait: 5 * time.Second,
		IDsWait:        2 * time.Second,
		MaxPicture:     10 << 20,
		MaxVideo:       100 << 20,
		JSONBodyLimit:  1 << 20,
		SnapshotEvery:  1000,
		LeaderRetry:    time.Second,

		LoginWindow:         15 * time.Minute,
		LoginPerUserAddress: 5,
		LoginPerAddress:     50,
		LoginPerUser:        10,
		LoginMaxDelay:       30 * time.Second,
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
		{&c.AccessTTL, &d.AccessTTL}, {&c.RefreshTTL, &d.RefreshTTL}, {&c.ReadyLag, &d.ReadyLag},
		{&c.ProjectionWait, &d.ProjectionWait}, {&c.IDsWait, &d.IDsWait}, {&c.LeaderRetry, &d.LeaderRetry},
		{&c.LoginWindow, &d.LoginWindow}, {&c.LoginMaxDelay, &d.LoginMaxDelay},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *int }{
		{&c.MaxGroup, &d.MaxGroup}, {&c.BcryptCost, &d.BcryptCost}, {&c.SnapshotEvery, &d.SnapshotEvery},
		{&c.LoginPerUserAddress, &d.LoginPerUserAddress}, {&c.LoginPerAddress, &d.LoginPerAddress}, {&c.LoginPerUser, &d.LoginPerUser},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *int64 }{{&c.MaxPicture, &d.MaxPicture}, {&c.MaxVideo, &d.MaxVideo}, {&c.JSONBodyLimit, &d.JSONBodyLimit}} {
		if *f.v <= 0 {
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
