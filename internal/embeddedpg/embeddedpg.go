// Package embeddedpg runs a private PostgreSQL server for development and
// tests, using the PostgreSQL server binaries installed on the machine.
//
// A server lives in a data folder (Config.DataDir) laid out as follows:
//
//	pgdata/        the cluster (initdb runs on first use)
//	password       the generated superuser password (mode 0600)
//	port           the TCP port of the running server, for other processes
//	postgres.log   the server log
//	run/           the server's private Unix socket folder
//	lock           serialises Start and Stop between processes
//
// The server listens on 127.0.0.1 only, on a port picked at start. A second
// Start on a folder whose server is running (started by another process, or
// by an earlier Start in this one) attaches to it instead of starting another.
//
// The package is Unix-only: when run as root it runs the PostgreSQL programs
// as an unprivileged user, since PostgreSQL refuses to run as root.
package embeddedpg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evchat/evchat/internal/wait"
)

// ErrBinariesNotFound is wrapped by the error Start returns when no
// PostgreSQL server binaries (initdb, pg_ctl, postgres) can be found.
var ErrBinariesNotFound = errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; " +
	"install them (Debian/Ubuntu: apt-get install postgresql) or put their folder on PATH")

// Superuser is the name of the superuser role created by initdb.
const Superuser = "postgres"

const (
	pgdataName   = "pgdata"
	passwordName = "password"
	portName     = "port"
	logName      = "postgres.log"
	socketName   = "run"
	lockName     = "lock"
	confName     = "embeddedpg.conf" // inside pgdata, rewritten at every start

	defaultStartTimeout = 30 * time.Second
	startAttempts       = 5                // retries when the picked port is taken meanwhile
	maxLogSize          = 10 << 20         // the log is rotated at start beyond this size
	maxSocketPath       = 107              // sizeof(sockaddr_un.sun_path) - 1 on Linux
	orphanWait          = 10 * time.Second // how long to wait for backends of a killed postmaster
)

// Config configures Start.
type Config struct {
	// DataDir is the folder that holds the cluster and the server's state
	// files. It is created if missing. Required.
	DataDir string

	// Logger receives progress messages. Nil means slog.Default().
	Logger *slog.Logger

	// Fast trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off). Meant for tests; a crash may corrupt the cluster.
	Fast bool

	// BinDir, when set, is the only folder searched for initdb, pg_ctl and
	// postgres. Empty means: PATH, then pg_config --bindir, then the highest
	// version in /usr/lib/postgresql/*/bin.
	BinDir string

	// MaxPreparedTransactions sets max_prepared_transactions. Zero keeps
	// PostgreSQL's default, which disables PREPARE TRANSACTION: the
	// application never uses two-phase commit, and a forgotten prepared
	// transaction would hold back every reader of the event log. Tests that
	// show how the event store treats one set it.
	MaxPreparedTransactions int

	// StartTimeout bounds how long Start waits for the server to start and
	// accept connections (initdb is not included). Zero means 30 seconds.
	StartTimeout time.Duration

	// Port, when set, is the port to listen on, so that a server started
	// again keeps its address for clients that reconnect. Zero picks a
	// free port at every start.
	Port int

	// PreloadLibraries are loaded at server start (shared_preload_libraries),
	// e.g. "pg_stat_statements" for a benchmark that reports where the
	// server's time went.
	PreloadLibraries []string

	pickPort func() (int, error) // tests: nil means freePort
}

// Server is a PostgreSQL server running on a data folder, either started by
// Start or attached to by it. Its methods are safe for concurrent use.
type Server struct {
	logger   *slog.Logger
	dataDir  string
	pgdata   string
	runAs    *account // nil: run the programs as the current user
	bins     binaries // zero when attached
	password string
	port     int
	started  bool
	pid      int // postmaster PID when started

	mu      sync.Mutex
	stopped bool
}

// Start returns a running server on cfg.DataDir. It finds the binaries, runs
// initdb on first use, starts the server and waits until it accepts
// connections. If a server is already running on cfg.DataDir, Start attaches
// to it instead: Started then reports false and Stop leaves it running.
//
// Errors are prefixed with "embeddedpg:"; when no binaries exist the error
// wraps ErrBinariesNotFound; when the server fails to come up it includes the
// tail of the server log. Start honours ctx; on failure it leaves no server
// of its own running.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("embeddedpg: start: %w", err)
	}
	return s, nil
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("data folder (Config.DataDir) is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	s := &Server{
		logger:  logger.With("component", "embeddedpg", "dir", dataDir),
		dataDir: dataDir,
		pgdata:  filepath.Join(dataDir, pgdataName),
	}

	unlock, err := lockDir(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// A live postmaster on the folder: attach.
	pid, state, err := readPostmaster(s.pgdata)
	if err != nil {
		return nil, err
	}
	if state == postmasterAlive {
		if err := s.attach(ctx, pid, timeout); err != nil {
			return nil, err
		}
		return s, nil
	}

	if s.runAs, err = serverAccount(s.pgdata); err != nil {
		return nil, err
	}
	if s.bins, err = findBinaries(ctx, cfg.BinDir); err != nil {
		return nil, err
	}
	if s.runAs != nil {
		if err := makeTraversable(s.logger, dataDir); err != nil {
			return nil, err
		}
	}
	if state == postmasterStale {
		if err := s.removeStalePID(ctx, pid); err != nil {
			return nil, err
		}
	}
	if err := s.ensureCluster(ctx); err != nil {
		return nil, err
	}
	pickPort := cfg.pickPort
	if pickPort == nil {
		pickPort = freePort
	}
	if cfg.Port != 0 {
		pickPort = func() (int, error) { return cfg.Port, nil }
	}
	if err := s.run(ctx, cfg, timeout, pickPort); err != nil {
		return nil, err
	}
	return s, nil
}

// URL returns the connection URL of the given database as the superuser,
// "postgres://postgres:PASSWORD@127.0.0.1:PORT/DATABASE?sslmode=disable".
func (s *Server) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(Superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the server listens on (on 127.0.0.1).
func (s *Server) Port() int { return s.port }

// DataDir returns the absolute path of the data folder.
func (s *Server) DataDir() string { return s.dataDir }

// Started reports whether Start started the server (false when it attached to
// a server that was already running).
func (s *Server) Started() bool { return s.started }

// Stop shuts down, with pg_ctl stop -m fast, a server this Server started and
// waits until it is gone. It is a no-op for an attached server, for a server
// already stopped, and when the postmaster it started is no longer running.
// Errors are prefixed with "embeddedpg: stop:" and include pg_ctl's output.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.stopped {
		return nil
	}
	if err := s.stop(ctx); err != nil {
		return fmt.Errorf("embeddedpg: stop: %w", err)
	}
	s.stopped = true
	return nil
}

func (s *Server) stop(ctx context.Context) error {
	unlock, err := lockDir(ctx, s.dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	pid, state, err := readPostmaster(s.pgdata)
	if err != nil {
		return err
	}
	if state != postmasterAlive || pid != s.pid {
		s.logger.Info("postgres already stopped", "pid", s.pid)
		return nil
	}
	out, err := s.runCmd(ctx, s.bins.pgCtl, "stop", "-D", s.pgdata, "-m", "fast", "-w", "-t", "120", "-s")
	if err != nil {
		return cmdError("pg_ctl stop", err, out)
	}
	if err := os.Remove(filepath.Join(s.dataDir, portName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	s.logger.Info("postgres stopped", "pid", pid)
	return nil
}

// attach adopts the live postmaster pid on the folder.
func (s *Server) attach(ctx context.Context, pid int, timeout time.Duration) error {
	pw, err := readPassword(s.dataDir)
	if err != nil {
		return fmt.Errorf("attach to running postgres (pid %d): %w", pid, err)
	}
	data, err := os.ReadFile(filepath.Join(s.dataDir, portName))
	if err != nil {
		return fmt.Errorf("attach to running postgres (pid %d): %w", pid, err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("attach to running postgres (pid %d): bad port file %q", pid, data)
	}
	s.password, s.port = pw, port
	if err := s.waitReady(ctx, timeout); err != nil {
		return fmt.Errorf("attach to running postgres (pid %d) on port %d: %w", pid, port, err)
	}
	s.logger.Info("attached to running postgres", "pid", pid, "port", port)
	return nil
}

// removeStalePID removes the postmaster.pid left by a postmaster that is gone,
// once no process of the dead server still uses the cluster.
func (s *Server) removeStalePID(ctx context.Context, pid int) error {
	s.logger.Warn("removing stale postmaster.pid", "pid", pid)
	if orphans, err := s.waitClusterProcesses(ctx); err != nil {
		return err
	} else if len(orphans) > 0 {
		return fmt.Errorf("postmaster %d is gone but its processes %v still use %s", pid, orphans, s.pgdata)
	}
	if err := os.Remove(filepath.Join(s.pgdata, "postmaster.pid")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale postmaster.pid: %w", err)
	}
	return nil
}

// waitClusterProcesses waits, up to orphanWait, until no postgres process
// uses pgdata (backends of a killed postmaster or initdb exit soon after
// it), and returns those still running then.
func (s *Server) waitClusterProcesses(ctx context.Context) ([]int, error) {
	deadline := time.Now().Add(orphanWait)
	for {
		orphans := clusterProcesses(s.pgdata)
		if len(orphans) == 0 || time.Now().After(deadline) {
			return orphans, nil
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// run starts the postmaster with pg_ctl on a free port and waits until it
// accepts connections.
func (s *Server) run(ctx context.Context, cfg Config, timeout time.Duration, pickPort func() (int, error)) error {
	logPath := filepath.Join(s.dataDir, logName)
	if err := s.prepareRunFiles(logPath); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			return err
		}
		if err := s.writeConf(port, cfg); err != nil {
			return err
		}
		offset := fileSize(logPath)
		s.logger.Debug("starting postgres", "port", port, "attempt", attempt)
		err = s.startOnce(ctx, port, logPath, timeout)
		if err == nil {
			s.started = true
			s.logger.Info("postgres started", "pid", s.pid, "port", port, "log", logPath)
			return nil
		}
		s.abort()
		tail := logTail(logPath, offset)
		if attempt < startAttempts && ctx.Err() == nil && portTaken(tail) {
			s.logger.Info("port taken, retrying", "port", port)
			continue
		}
		return fmt.Errorf("%w\nserver log:\n%s", err, tail)
	}
}

// startOnce runs pg_ctl start with the server on port, waits until it accepts
// connections, and publishes the port. timeout bounds the whole.
func (s *Server) startOnce(ctx context.Context, port int, logPath string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	waitSecs := strconv.Itoa(max(1, int(timeout.Round(time.Second)/time.Second)))
	out, err := s.runCmd(ctx, s.bins.pgCtl, "start", "-D", s.pgdata, "-l", logPath, "-w", "-t", waitSecs, "-s")
	if err != nil {
		return cmdError("pg_ctl start", err, out)
	}
	pid, state, err := readPostmaster(s.pgdata)
	if err != nil {
		return err
	}
	if state != postmasterAlive {
		return errors.New("postmaster exited right after start")
	}
	s.port, s.pid = port, pid
	if err := s.waitReady(ctx, timeout); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dataDir, portName), []byte(strconv.Itoa(port)+"\n"), 0o644)
}

// abort kills, without waiting for clients, a postmaster left by a failed
// start. It uses its own context: ctx may be what made the start fail.
func (s *Server) abort() {
	if _, state, _ := readPostmaster(s.pgdata); state != postmasterAlive {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := s.runCmd(ctx, s.bins.pgCtl, "stop", "-D", s.pgdata, "-m", "immediate", "-w", "-s"); err != nil {
		s.logger.Warn("could not stop postgres after failed start", "err", err, "output", out)
	}
}

// prepareRunFiles creates the log file and socket folder and hands the files
// the server writes to the server account.
func (s *Server) prepareRunFiles(logPath string) error {
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxLogSize {
		if err := os.Rename(logPath, logPath+".1"); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.dataDir, socketName), 0o700); err != nil {
		return err
	}
	for _, p := range []string{logPath, filepath.Join(s.dataDir, socketName)} {
		if err := s.runAs.chown(p); err != nil {
			return err
		}
	}
	return s.runAs.chownTree(s.pgdata)
}

// writeConf writes the per-start settings into pgdata/embeddedpg.conf, which
// postgresql.conf includes.
func (s *Server) writeConf(port int, cfg Config) error {
	socketDir := filepath.Join(s.dataDir, socketName)
	if len(socketDir)+len("/.s.PGSQL.65535.lock") > maxSocketPath {
		socketDir = "" // TCP only: the path is too long for a Unix socket
	}
	var b strings.Builder
	b.WriteString("# Written by embeddedpg at every start; edits are lost.\n")
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&b, "port = %d\n", port)
	fmt.Fprintf(&b, "unix_socket_directories = %s\n", confQuote(socketDir))
	b.WriteString("unix_socket_permissions = 0700\n")
	b.WriteString("max_connections = 200\n")
	b.WriteString("shared_buffers = 128MB\n")
	b.WriteString("password_encryption = 'scram-sha-256'\n")
	b.WriteString("logging_collector = off\n")
	if cfg.MaxPreparedTransactions > 0 {
		fmt.Fprintf(&b, "max_prepared_transactions = %d\n", cfg.MaxPreparedTransactions)
	}
	if len(cfg.PreloadLibraries) > 0 {
		fmt.Fprintf(&b, "shared_preload_libraries = %s\n", confQuote(strings.Join(cfg.PreloadLibraries, ",")))
	}
	if cfg.Fast {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	path := filepath.Join(s.pgdata, confName)
	if err := writeFileAtomic(path, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return s.runAs.chown(path)
}

// waitReady connects until the server answers "select 1" or timeout passes.
// Authentication failures end the wait at once.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := ping(wctx, s.URL("postgres"))
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000") {
			return fmt.Errorf("connect: %w", err)
		}
		if wait.Sleep(wctx, 100*time.Millisecond) != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("not accepting connections after %s: %w", timeout, err)
		}
	}
}
