// Package chatd wires the chat server together: configuration, the
// database (embedded when none is configured), migrations, the event store,
// commands, the projector and the HTTP API. cmd/chatd parses configuration
// into a Config and runs a Main; end-to-end tests run the same Main on a
// free port.
package chatd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	stdhttp "net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	pgstore "github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/history"
	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/internal/embeddedpg"
	"github.com/evchat/evchat/internal/metrics"
	"github.com/evchat/evchat/internal/pgerr"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/postgres"
	"github.com/evchat/evchat/postgres/notifier"
	"github.com/evchat/evchat/projections"
	"github.com/evchat/evchat/readmodel"
	"github.com/evchat/evchat/shred"
)

// Main is a running server.
type Main struct {
	cfg Config
	log *slog.Logger

	pg    *embeddedpg.Server
	pool  *pgxpool.Pool
	store eventstore.Store
	close func()
	// notifier is the one LISTEN connection; stopNotifier ends its Run,
	// which closes notifierDone.
	notifier     *notifier.Notifier
	stopNotifier context.CancelFunc
	notifierDone chan struct{}
	api          *chathttp.Server
	ln           net.Listener
	srv          *stdhttp.Server
	wm           *projections.Watermark
	tokens       *auth.Tokens
	// shred is the shredding store under the metrics (package shred).
	shred *shred.Store
	// metrics are the process's series; metricsLn and metricsSrv serve
	// them on their own address when Config.MetricsAddr is set.
	metrics    *metrics.Metrics
	metricsLn  net.Listener
	metricsSrv *stdhttp.Server
	// deliveries records delivery receipts in bulk (run by Run).
	deliveries *commands.Deliveries
	// searchWM is how far the search index is projected (search.go).
	searchWM *projections.Watermark
}

// New prepares a server: it starts the embedded database if needed, applies
// migrations, opens the event store and binds the listening address. Run
// serves; Close releases everything New took.
func New(ctx context.Context, cfg Config, log *slog.Logger) (m *Main, err error) {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	m = &Main{cfg: cfg, log: log}
	built := m
	defer func() {
		if err != nil {
			built.Close() // m is nil by now: the return set it
		}
	}()
	// The addresses are bound before anything slow starts (the embedded
	// database): a taken port fails at once. Close releases them.
	if err := m.listen(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if m.pool, m.pg, err = OpenDatabase(ctx, cfg, log); err != nil {
		return nil, err
	}
	if applied, err := migrations.Apply(ctx, m.pool); err != nil {
		return nil, err
	} else if len(applied) > 0 {
		log.Info("migrations applied", "files", applied)
	}
	// Users projected before usernames were keyed by NFKC and case
	// folding get their key (migrations/readmodel/0005).
	if n, err := projections.RekeyUsernames(ctx, m.pool); err != nil {
		return nil, err
	} else if n > 0 {
		log.Info("usernames re-keyed", "users", n)
	}
	// The process's one LISTEN connection, for every channel; it runs
	// until Close.
	m.notifier = notifier.New(notifier.Pool(m.pool), log)
	nctx, stopNotifier := context.WithCancel(context.Background())
	m.notifierDone = make(chan struct{})
	m.stopNotifier = stopNotifier
	go func() {
		defer close(m.notifierDone)
		_ = m.notifier.Run(nctx)
	}()
	if m.store, m.close, err = OpenStore(ctx, cfg, m.pool, m.notifier, log); err != nil {
		return nil, err
	}
	m.shred = m.store.(*shred.Store) // the forget flow drops its cached keys
	m.metrics = metrics.New()
	m.store = m.metrics.TimedStore(m.store)
	key, err := auth.LoadOrCreateSigningKey(cfg.JWTKeyFile)
	if err != nil {
		return nil, err
	}
	limits := domain.DefaultLimits()
	limits.MaxGroupMembers = cfg.MaxGroup
	rm := readmodel.New(m.pool)
	// No id is handed out before the read model has projected the log as it
	// is now: its id sequences may lag the log (see commands.Config.IDsAfter).
	head, err := m.store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the log's head: %w", err)
	}
	m.wm = projections.NewWatermark()
	m.searchWM = projections.NewWatermark()
	cmds := commands.New(commands.Config{
		Store: m.store, IDs: postgres.NewIDs(m.pool), Lookups: postgres.NewLookups(m.pool),
		SendKeys: postgres.NewSendKeys(m.pool), Credentials: postgres.NewCredentials(m.pool), Snapshots: postgres.NewSnapshots(m.pool), Registry: domain.NewRegistry(),
		Limits: limits, Logger: log, SnapshotEvery: cfg.SnapshotEvery,
		Projected: m.wm, IDsAfter: head, IDsWait: cfg.IDsWait,
		InviteTTL: cfg.InviteTTL, Now: cfg.Hooks.Now, Observe: m.metrics.Command,
		Messages: postgres.NewLookups(m.pool),
	})
	// A forgotten user's room names may be in the command state this
	// process caches: it is dropped when any process forgets a user.
	notifierBus{m.notifier}.Subscribe(shred.Channel, func(string) { cmds.DropCachedState() }, cmds.DropCachedState)
	// A logout closes the session's sockets on every process: the bus
	// tells each, and each closes its own (m.api is set before Listen).
	var now func() time.Time // the system's, unless a test gives a clock
	if cfg.Hooks.Clock != nil {
		now = cfg.Hooks.Clock.Now
	}
	m.tokens = auth.New(auth.Config{
		Sessions: postgres.NewSessions(m.pool), SigningKey: key, Logger: log, Now: now,
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, ReuseGrace: cfg.RefreshReuseGrace,
		OnRevoke: func(session uuid.UUID) { m.api.CloseSession(session) },
	})
	throttle := auth.NewThrottle(auth.ThrottleConfig{
		Attempts: postgres.NewAttempts(m.pool), Window: cfg.LoginWindow, Logger: log,
		PerUserAddress: cfg.LoginPerUserAddress, PerAddress: cfg.LoginPerAddress,
		PerUser: cfg.LoginPerUser, MaxDelay: cfg.LoginMaxDelay,
	})
	m.deliveries = newDeliveries(cfg, cmds, m.pool, m)
	var apiLog chathttp.Log = m.store
	if cfg.Hooks.APILog != nil {
		apiLog = cfg.Hooks.APILog(apiLog)
	}
	m.api = chathttp.New(chathttp.Config{
		Database: m.pool, Log: apiLog, Commands: cmds, ReadModel: rm, Watermark: m.wm,
		Media:  &chathttp.FileStorage{Dir: filepath.Join(cfg.DataDir, "media")},
		Tokens: m.tokens, Throttle: throttle, Passwords: auth.NewBcrypt(cfg.BcryptCost),
		Credentials: postgres.NewCredentials(m.pool),
		Logger:      log, PublicURL: cfg.PublicURL, JSONBodyLimit: cfg.JSONBodyLimit,
		AllowedOrigins: cfg.Origins, TrustedProxies: cfg.TrustedProxies,
		ReadyLag: cfg.ReadyLag, ProjectionWait: cfg.ProjectionWait,
		MaxPicture: cfg.MaxPicture, MaxVideo: cfg.MaxVideo, SocketHook: cfg.Hooks.SocketHook,
		Unreachable: pgerr.Unreachable, Bus: notifierBus{m.notifier},
		ResumeMax: cfg.ResumeMax, SocketsPerUser: cfg.SocketsPerUser, SocketsMax: cfg.SocketsMax,
		TypingInterval: cfg.TypingInterval, Clock: cfg.Hooks.Clock,
		MaxFormParts: cfg.MaxFormParts, MaxFormField: cfg.MaxFormField,
		RegisterLimit: cfg.RegisterRate, SendLimit: cfg.SendRate, ReadLimit: cfg.ReadRate, Now: cfg.Hooks.Now,
		AuditPage: cfg.Hooks.AuditPage, CORSOrigins: cfg.CORSOrigins, WriteWait: cfg.Hooks.WSWriteWait,
		BodyTimeout: cfg.BodyTimeout, BodyMinRate: cfg.BodyMinRate,
		Observer: m.metrics, Metrics: m.apiMetrics(),
		Deliveries: deliveriesOf(cfg, m.deliveries), Presence: presenceOf(cfg, m.pool),
		PresenceDebounce: cfg.PresenceDebounce, PresenceHeartbeat: cfg.PresenceHeartbeat,
		Search: m.searchAPI(rm), ChatPaused: m.chatPaused,
		ReadWait: cfg.ReadWait, WriteMarks: &chathttp.WriteMarks{}, ReadWaiting: cfg.ReadWaiting,
		AdminToken: cfg.AdminToken, Forgetter: NewForgetter(m.pool, cmds, m.shred, filepath.Join(cfg.DataDir, "media"), log),
		Past: history.New(history.Config{
			Log: m.store, Registry: cmds.Registry(), Blocks: postgres.NewHistoryBlocks(m.pool), Rooms: rm, Logger: log,
		}),
	})
	m.tokens.Listen(notifierBus{m.notifier})
	m.registerGauges()
	m.srv = &stdhttp.Server{Handler: m.api, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout}
	return m, nil
}

// OpenDatabase connects to cfg.DatabaseURL, or starts the embedded
// PostgreSQL in cfg.DataDir (or attaches to the one a running chatd started)
// and connects to it. The returned server is nil when not embedded.
func OpenDatabase(ctx context.Context, cfg Config, log *slog.Logger) (*pgxpool.Pool, *embeddedpg.Server, error) {
	url := cfg.DatabaseURL
	var pg *embeddedpg.Server
	if url == "" {
		var err error
		pg, err = embeddedpg.Start(ctx, embeddedpg.Config{DataDir: filepath.Join(cfg.DataDir, "postgres"), Logger: log, Fast: cfg.Hooks.FastEmbedded})
		if err != nil {
			return nil, nil, err
		}
		url = pg.URL("postgres")
		log.Info("embedded PostgreSQL ready", "port", pg.Port(), "started", pg.Started())
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		stopQuietly(pg)
		return nil, nil, fmt.Errorf("database url: %w", err)
	}
	// The read model is found by name through the search path, so a rebuilt
	// schema swapped in under the same name serves at once.
	pc.ConnConfig.RuntimeParams["search_path"] = migrations.ReadModel.SearchPath()
	// The server notices a client host that died or was cut off within
	// about half a minute, not the operating system's two hours, and ends
	// its sessions: their transactions and locks go with them.
	for k, v := range map[string]string{"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
		"tcp_keepalives_count": "3", "tcp_user_timeout": "30000"} {
		if _, set := pc.ConnConfig.RuntimeParams[k]; !set {
			pc.ConnConfig.RuntimeParams[k] = v
		}
	}
	if pc.MaxConns < 20 {
		pc.MaxConns = 20
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		stopQuietly(pg)
		return nil, nil, fmt.Errorf("connect to the database: %w", err)
	}
	return pool, pg, nil
}

func stopQuietly(pg *embeddedpg.Server) {
	if pg != nil {
		_ = pg.Stop(context.Background())
	}
}

// OpenStore opens the event store that cfg selects. The PostgreSQL store
// hints other processes of its appends through n, and wakes on theirs when
// n runs.
//
// The store returned is the shredder (package shred) around the configured
// one: personal data is sealed on append and opened, or replaced by
// placeholders for forgotten users, on every read.
func OpenStore(ctx context.Context, cfg Config, pool *pgxpool.Pool, n *notifier.Notifier, log *slog.Logger) (eventstore.Store, func(), error) {
	inner, closeFn, err := openConfiguredStore(ctx, cfg, pool, n, log)
	if err != nil {
		return nil, nil, err
	}
	s, err := openShredder(ctx, cfg, inner, pool, notifierBus{n}, log)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return s, closeFn, nil
}

func openConfiguredStore(ctx context.Context, cfg Config, pool *pgxpool.Pool, n *notifier.Notifier, log *slog.Logger) (eventstore.Store, func(), error) {
	if cfg.EventStoreURL != "" {
		return openESDB(ctx, cfg.EventStoreURL, cfg.Hooks.EventStorePrefix, log)
	}
	s := pgstore.New(pool, pgstore.Options{Logger: log, Hints: n.Channel(pgstore.Channel)})
	return s, s.Close, nil
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// URL is the server's base URL.
func (m *Main) URL() string { return "http://" + m.Addr() }

// Pool is the database pool (for tests and tools).
func (m *Main) Pool() *pgxpool.Pool { return m.pool }

// Store is the event store.
func (m *Main) Store() eventstore.Store { return m.store }

// Watermark is how far this process has seen the read model projected.
func (m *Main) Watermark() *projections.Watermark { return m.wm }

// Run serves until ctx ends, then shuts down gracefully: it stops taking
// requests, closes WebSockets with a going-away code, lets requests in
// flight finish (10 s at most) and stops background work.
func (m *Main) Run(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goRun := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(bg); err != nil && !errors.Is(err, context.Canceled) {
				m.log.Error(name+" stopped", "err", err)
			}
		}()
	}
	registry := domain.NewRegistry()
	projector := projections.NewProjector(m.pool, m.store, projections.NewChat(registry), projections.ProjectorOptions{
		Logger: m.log, BeforeCommit: m.cfg.Hooks.ProjectorBeforeCommit,
		OnApplied: func(evs []eventstore.RecordedEvent, through eventstore.Position) {
			m.metrics.Projected(projections.ChatName, len(evs))
			m.wm.Advance(through)
		},
	})
	goRun("projector", func(ctx context.Context) error {
		return projections.Leader(ctx, m.pool, projections.LeaderOptions{Logger: m.log, Retry: m.cfg.LeaderRetry}, projector.RunLeased)
	})
	goRun("projection tracker", func(ctx context.Context) error {
		return projections.Track(ctx, m.pool, m.wm, projections.ChatName, 250*time.Millisecond, m.notifier.Channel(projections.ProjectedChannel))
	})
	m.runSearch(goRun)
	// WebSocket fan-out starts where the read model is now, read before
	// any request is served: see http.Server.Run.
	start, cerr := projections.ReadCheckpoint(ctx, m.pool, migrations.ReadModel, projections.ChatName)
	if cerr != nil {
		cancel()
		wg.Wait()
		return cerr
	}
	m.wm.Advance(start)
	goRun("websocket hub", func(ctx context.Context) error { return m.api.Run(ctx, start) })
	goRun("delivery receipts", m.deliveries.Run)
	select {
	case <-all(m.api.Listening(), m.tokens.Listening()):
	case <-time.After(5 * time.Second):
		m.log.Warn("serving before the cross-process control channel listens; it keeps trying")
	}

	serveErr := make(chan error, 2)
	go func() { serveErr <- m.srv.Serve(m.ln) }()
	m.serveMetrics(serveErr)
	m.log.Info("chatd listening on "+m.URL(), "addr", m.Addr())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	shutdown, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	// Stop taking requests first, then close the sockets (1001): an upgrade
	// cannot slip in between.
	if serr := m.srv.Shutdown(shutdown); serr != nil && err == nil {
		err = serr
	}
	if m.metricsSrv != nil {
		_ = m.metricsSrv.Shutdown(shutdown)
	}
	_ = m.api.Shutdown(shutdown)
	cancel()
	wg.Wait()
	if errors.Is(err, stdhttp.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases the event store, the pool and the embedded database.
func (m *Main) Close() {
	if m.ln != nil {
		_ = m.ln.Close()
	}
	if m.metricsLn != nil {
		_ = m.metricsLn.Close()
	}
	if m.close != nil {
		m.close()
	}
	if m.stopNotifier != nil {
		m.stopNotifier()
		<-m.notifierDone
	}
	if m.pool != nil {
		m.pool.Close()
	}
	if m.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.pg.Stop(ctx); err != nil {
			m.log.Error("stop embedded PostgreSQL", "err", err)
		}
	}
}
