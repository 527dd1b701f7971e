// Package pgtest gives tests PostgreSQL databases: one server per test
// binary, one fresh database per test.
//
// Use it from a package's tests like this:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		url := pgtest.NewDatabase(t) // empty database, dropped after the test
//		...
//	}
//
// The server is an embeddedpg server started on first use in a temporary
// folder, with durability off (Fast) and prepared transactions allowed, and
// stopped by Main. When the
// TEST_DATABASE_URL environment variable is set, databases are created on
// that server instead and no server is started.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/embeddedpg"
	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points the tests at an existing
// server: a postgres:// URL of a database (e.g. postgres) as a role allowed to
// create databases.
const EnvURL = "TEST_DATABASE_URL"

const (
	startTimeout = 2 * time.Minute
	sqlTimeout   = time.Minute
	// maxPreparedTransactions lets tests show how code treats a two-phase
	// transaction (PREPARE TRANSACTION), which the application never uses.
	maxPreparedTransactions = 8
)

// shared is the test binary's one embedded server.
var shared struct {
	mu         sync.Mutex
	mainCalled bool
	srv        *embeddedpg.Server
	dir        string
	err        error // the first start failure, reported to every test
	closed     bool
}

// Main runs the tests and then stops the shared server, if one was started,
// and removes its folder. Call it from TestMain. It exits with the tests' exit
// code, or 1 if they passed but the server could not be stopped. On SIGINT or
// SIGTERM it stops the server before exiting, so that none is left behind.
// The after functions run before the shared server stops, also on a signal:
// a package that starts servers of its own stops them there.
func Main(m *testing.M, after ...func()) {
	runAfter := func() {
		for _, f := range after {
			f()
		}
	}
	shared.mu.Lock()
	shared.mainCalled = true
	shared.mu.Unlock()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "pgtest: %v: stopping the test server\n", sig)
			runAfter()
			if err := shutdown(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			}
			os.Exit(1)
		case <-done:
		}
	}()

	code := m.Run()
	signal.Stop(sigs)
	close(done)
	runAfter()
	if err := shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// shutdown stops the shared server and removes its folder; later uses fail.
func shutdown() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.closed = true
	if shared.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := shared.srv.Stop(ctx)
	shared.srv = nil
	if err == nil {
		err = os.RemoveAll(shared.dir)
	}
	if err != nil {
		return fmt.Errorf("shut down test server (folder %s): %w", shared.dir, err)
	}
	return nil
}

// NewDatabase creates an empty database for the test and returns its URL.
// The database is dropped (WITH (FORCE), so open connections do not block it)
// when the test ends. It is safe for parallel tests. On any failure,
// including missing PostgreSQL binaries or a package whose TestMain does not
// call Main, it calls t.Fatal with the reason.
func NewDatabase(t testing.TB) string {
	t.Helper()
	adminURL, dbURL, err := target()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name, err := databaseName()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	quoted := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(t.Context(), sqlTimeout)
	defer cancel()
	if err := execAdmin(ctx, adminURL, "CREATE DATABASE "+quoted); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
		defer cancel()
		if err := execAdmin(ctx, adminURL, "DROP DATABASE IF EXISTS "+quoted+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := dbURL(name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// Server returns the shared embedded server, starting it on first use. It
// calls t.Fatal if the server cannot be started, or if TEST_DATABASE_URL is
// set (then there is no embedded server; use NewDatabase).
func Server(t testing.TB) *embeddedpg.Server {
	t.Helper()
	if os.Getenv(EnvURL) != "" {
		t.Fatalf("pgtest: %s is set, so the tests use that server and there is no embedded server", EnvURL)
	}
	srv, err := sharedServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return srv
}

// target returns the maintenance URL (where databases are created) and the
// function giving a database's URL.
func target() (string, func(string) (string, error), error) {
	if base := os.Getenv(EnvURL); base != "" {
		if _, err := withDatabase(base, "postgres"); err != nil {
			return "", nil, err
		}
		return base, func(name string) (string, error) { return withDatabase(base, name) }, nil
	}
	srv, err := sharedServer()
	if err != nil {
		return "", nil, err
	}
	return srv.URL("postgres"), func(name string) (string, error) { return srv.URL(name), nil }, nil
}

// sharedServer returns the test binary's server, starting it on first use.
// A start failure is remembered and returned to every later caller.
func sharedServer() (*embeddedpg.Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	switch {
	case !shared.mainCalled:
		return nil, errors.New("the package's TestMain must call pgtest.Main(m), which stops the test server " +
			"(add: func TestMain(m *testing.M) { pgtest.Main(m) })")
	case shared.closed:
		return nil, errors.New("the test server was already shut down")
	case shared.srv != nil || shared.err != nil:
		return shared.srv, shared.err
	}

	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		shared.err = fmt.Errorf("start test server: %w", err)
		return nil, shared.err
	}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// Not a test's context: the server outlives the test that starts it.
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := embeddedpg.Start(ctx, embeddedpg.Config{DataDir: dir, Logger: logger, Fast: true,
		MaxPreparedTransactions: maxPreparedTransactions})
	if err != nil {
		_ = os.RemoveAll(dir)
		shared.err = fmt.Errorf("start test server: %w", err)
		return nil, shared.err
	}
	shared.srv, shared.dir = srv, dir
	return srv, nil
}

// withDatabase returns the postgres:// URL base with its database replaced.
func withDatabase(base, database string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("%s: %w", EnvURL, err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("%s must be a postgres:// URL, got scheme %q", EnvURL, u.Scheme)
	}
	u.Path, u.RawPath = "/"+database, ""
	return u.String(), nil
}

func databaseName() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "t_" + hex.EncodeToString(b), nil
}

func execAdmin(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}
