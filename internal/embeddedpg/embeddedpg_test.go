package embeddedpg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer starts (or attaches to) the server on dir and stops it when
// the test ends.
func startServer(t *testing.T, dir string, fast bool) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Config{DataDir: dir, Logger: testLogger(t), Fast: fast})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func execSQL(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func postmasterPID(t *testing.T, s *Server) int {
	t.Helper()
	pid, state, err := readPostmaster(s.pgdata)
	if err != nil || state != postmasterAlive {
		t.Fatalf("postmaster: pid %d, state %d, err %v", pid, state, err)
	}
	return pid
}

func TestStartStopRestartReusesData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	s := startServer(t, dir, false)
	if !s.Started() {
		t.Fatal("Started() = false for a fresh folder")
	}
	if !strings.HasPrefix(s.URL("app"), "postgres://postgres:") || !strings.HasSuffix(s.URL("app"), "/app?sslmode=disable") {
		t.Errorf("URL = %q", s.URL("app"))
	}
	conn := connect(t, s.URL("postgres"))
	if n := count(t, conn, "select 1"); n != 1 {
		t.Fatalf("select 1 = %d", n)
	}
	execSQL(t, conn, "create table kept (x int); insert into kept values (42)")
	conn.Close(t.Context())

	fi, err := os.Stat(filepath.Join(dir, passwordName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode = %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, portName)); err != nil {
		t.Errorf("port file: %v", err)
	}
	if os.Geteuid() == 0 {
		pfi, err := os.Stat(s.pgdata)
		if err != nil {
			t.Fatal(err)
		}
		if pfi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Error("pgdata is owned by root")
		}
	}

	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, portName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("port file after Stop: %v", err)
	}
	if _, err := pgx.Connect(t.Context(), s.URL("postgres")); err == nil {
		t.Fatal("server still answers after Stop")
	}
	version, err := os.Stat(filepath.Join(s.pgdata, "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, dir, true)
	if !s2.Started() {
		t.Fatal("Started() = false after a Stop")
	}
	conn = connect(t, s2.URL("postgres"))
	if n := count(t, conn, "select x from kept"); n != 42 {
		t.Fatalf("kept row = %d, want 42", n)
	}
	if n := count(t, conn, "select count(*) from pg_settings where name = 'fsync' and setting = 'off'"); n != 1 {
		t.Error("Fast did not turn fsync off")
	}
	version2, err := os.Stat(filepath.Join(s.pgdata, "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if !version2.ModTime().Equal(version.ModTime()) {
		t.Error("initdb ran again")
	}
}

func TestStartRecoversFromKilledPostmaster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	s := startServer(t, dir, true)
	conn := connect(t, s.URL("postgres"))
	execSQL(t, conn, "create table kept (x int); insert into kept values (7)")
	// Fast means synchronous_commit=off: make the commit durable before the kill.
	execSQL(t, conn, "checkpoint")
	pid := postmasterPID(t, s)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for postgresAlive(pid, s.pgdata) {
		if time.Now().After(deadline) {
			t.Fatal("killed postmaster still alive")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(s.pgdata, "postmaster.pid")); err != nil {
		t.Fatalf("expected a stale postmaster.pid: %v", err)
	}

	s2 := startServer(t, dir, true)
	if !s2.Started() {
		t.Fatal("Started() = false after the postmaster was killed")
	}
	conn2 := connect(t, s2.URL("postgres"))
	if n := count(t, conn2, "select x from kept"); n != 7 {
		t.Fatalf("kept row = %d, want 7", n)
	}
	// The first Server's postmaster is gone: its Stop must not stop the new one.
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn2, "select 1"); n != 1 {
		t.Fatal("new server stopped by the old Server's Stop")
	}
}

func TestStartAttachesToRunningServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	s := startServer(t, dir, true)
	attached := startServer(t, dir, true)
	if attached.Started() {
		t.Fatal("second Start on a running folder: Started() = true, want false")
	}
	if attached.URL("x") != s.URL("x") {
		t.Fatalf("attached URL %q != %q", attached.URL("x"), s.URL("x"))
	}
	conn := connect(t, attached.URL("postgres"))
	if n := count(t, conn, "select 1"); n != 1 {
		t.Fatal("select 1 through the attached server")
	}
	if err := attached.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn2 := connect(t, s.URL("postgres"))
	if n := count(t, conn2, "select 1"); n != 1 {
		t.Fatal("server stopped by the attached Server's Stop")
	}
	conn.Close(t.Context())
	conn2.Close(t.Context())
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, state, _ := readPostmaster(s.pgdata); state != postmasterNone {
		t.Fatalf("postmaster state after Stop = %d", state)
	}
}

// TestHelperStart is not a test: run by TestStartAttachesAcrossProcesses as a
// separate process, it starts a server and exits without stopping it, like a
// CLI that leaves the server running.
func TestHelperStart(t *testing.T) {
	dir := os.Getenv("EMBEDDEDPG_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Start(t.Context(), Config{DataDir: dir, Logger: testLogger(t), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("started=%v port=%d\n", s.Started(), s.Port())
}

func TestStartAttachesAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStart$", "-test.count=1")
	cmd.Env = append(os.Environ(), "EMBEDDEDPG_HELPER_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "started=true") {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	t.Cleanup(func() { forceStop(t, dir) })

	// The helper has exited; its server must still run, and we attach to it.
	s := startServer(t, dir, true)
	if s.Started() {
		t.Fatal("Started() = true, want an attach to the helper's server")
	}
	if want := fmt.Sprintf("port=%d", s.Port()); !strings.Contains(string(out), want) {
		t.Errorf("attached on port %d, helper said %s", s.Port(), out)
	}
	conn := connect(t, s.URL("postgres"))
	if n := count(t, conn, "select 1"); n != 1 {
		t.Fatal("select 1 through the attached server")
	}
}

// forceStop stops whatever server runs on dir, as its owner would.
func forceStop(t *testing.T, dir string) {
	t.Helper()
	bins, err := findBinaries(context.Background(), "")
	if err != nil {
		t.Error(err)
		return
	}
	pgdata := filepath.Join(dir, pgdataName)
	runAs, err := serverAccount(pgdata)
	if err != nil {
		t.Error(err)
		return
	}
	s := &Server{dataDir: dir, pgdata: pgdata, runAs: runAs, bins: bins}
	if out, err := s.runCmd(context.Background(), bins.pgCtl, "stop", "-D", pgdata, "-m", "fast", "-w"); err != nil {
		t.Errorf("pg_ctl stop: %v: %s", err, out)
	}
}

func TestStartRetriesWhenPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	picks := 0
	pick := func() (int, error) {
		picks++
		if picks == 1 {
			return taken, nil
		}
		return freePort()
	}
	dir := t.TempDir()
	s, err := Start(t.Context(), Config{DataDir: dir, Logger: testLogger(t), Fast: true, pickPort: pick})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if picks != 2 || s.Port() == taken {
		t.Fatalf("picks = %d, port = %d (taken %d)", picks, s.Port(), taken)
	}
	conn := connect(t, s.URL("postgres"))
	if n := count(t, conn, "select 1"); n != 1 {
		t.Fatal("select 1")
	}
}

func TestStartFailureReportsServerLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, true)
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := appendFile(filepath.Join(s.pgdata, "postgresql.conf"), "work_mem = 'bogus'\n"); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Config{DataDir: dir, Logger: testLogger(t)})
	if err == nil {
		t.Fatal("Start succeeded with a broken postgresql.conf")
	}
	if !strings.Contains(err.Error(), "server log:") || !strings.Contains(err.Error(), "work_mem") {
		t.Errorf("error lacks the server log: %v", err)
	}
	if _, state, _ := readPostmaster(s.pgdata); state == postmasterAlive {
		t.Error("failed Start left a postmaster running")
	}
}

func TestStartBinariesNotFound(t *testing.T) {
	t.Parallel()
	_, err := Start(t.Context(), Config{DataDir: t.TempDir(), BinDir: t.TempDir(), Logger: testLogger(t)})
	if !errors.Is(err, ErrBinariesNotFound) {
		t.Fatalf("err = %v, want ErrBinariesNotFound", err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("error does not name the package: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	if _, err := Start(t.Context(), Config{}); err == nil || !strings.Contains(err.Error(), "DataDir") {
		t.Errorf("empty DataDir: err = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := t.TempDir()
	if _, err := Start(ctx, Config{DataDir: dir}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v, want context.Canceled", err)
	}
}

// A cluster that has been used and lost its password file is refused, not
// made again: it holds data.
func TestStartRefusesUsedClusterWithoutPassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, true)
	conn := connect(t, s.URL("postgres"))
	execSQL(t, conn, "create table kept (x int); insert into kept values (3)")
	conn.Close(t.Context())
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	pwPath := filepath.Join(dir, passwordName)
	pw, err := os.ReadFile(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pwPath); err != nil {
		t.Fatal(err)
	}
	version, err := os.Stat(filepath.Join(s.pgdata, "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}

	_, err = Start(t.Context(), Config{DataDir: dir, Logger: testLogger(t), Fast: true})
	if err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("used cluster without password: err = %v; want a refusal that names the password file", err)
	}
	if v, err := os.Stat(filepath.Join(s.pgdata, "PG_VERSION")); err != nil || !v.ModTime().Equal(version.ModTime()) {
		t.Fatalf("cluster touched by the refused start: %v", err)
	}

	// With its password back, the cluster starts with its data.
	if err := os.WriteFile(pwPath, pw, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, dir, true)
	conn2 := connect(t, s2.URL("postgres"))
	if n := count(t, conn2, "select x from kept"); n != 3 {
		t.Fatalf("kept row = %d, want 3", n)
	}
}

// unfinishedSetup leaves dir as an interrupted first start would.
type unfinishedSetup func(t *testing.T, dir string)

// A first start interrupted after initdb began (a cancelled context, a
// Ctrl-C, a killed process) leaves PG_VERSION without a password file. The
// next start makes the cluster again instead of refusing the folder.
func TestStartRemakesUnfinishedCluster(t *testing.T) {
	t.Parallel()
	for name, setup := range map[string]unfinishedSetup{
		// initdb ran to its end; the start stopped before the password
		// file was written.
		"initdb finished": func(t *testing.T, dir string) {
			s := unstartedServer(t, dir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if s.runAs != nil {
				if err := makeTraversable(s.logger, dir); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.initdb(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, passwordName)); err != nil {
				t.Fatal(err)
			}
		},
		// initdb was killed soon after it wrote PG_VERSION.
		"initdb killed": func(t *testing.T, dir string) {
			pgdata := filepath.Join(dir, pgdataName)
			if err := os.MkdirAll(filepath.Join(pgdata, "base"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pgdata, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			setup(t, dir)
			if _, err := os.Stat(filepath.Join(dir, pgdataName, "PG_VERSION")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, passwordName)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("password file: %v; want none", err)
			}
			s := startServer(t, dir, true)
			if !s.Started() {
				t.Fatal("Started() = false")
			}
			conn := connect(t, s.URL("postgres"))
			if n := count(t, conn, "select 1"); n != 1 {
				t.Fatal("select 1")
			}
		})
	}
}

// unstartedServer is a Server on dir with what Start finds before initdb.
func unstartedServer(t *testing.T, dir string) *Server {
	t.Helper()
	bins, err := findBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	pgdata := filepath.Join(dir, pgdataName)
	runAs, err := serverAccount(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{logger: testLogger(t), dataDir: dir, pgdata: pgdata, runAs: runAs, bins: bins}
}

// os/exec reports ctx's error for a program that exits with success after
// ctx ended (after it was interrupted): runCmd must report the success, or a
// finished initdb counts as failed and its cluster is left without its
// password file.
func TestRunCmdReportsSuccessAfterCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := &Server{dataDir: dir} // runs as the current user
	// The program says it is ready, waits to be interrupted, and then
	// finishes its work and exits with success.
	script := `trap 'touch interrupted' INT; touch ready; while [ ! -e interrupted ]; do sleep 0.01; done; exit 0`
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := s.runCmd(ctx, "/bin/sh", "-c", script)
		done <- result{out, err}
	}()
	deadline := time.Now().Add(time.Minute) // only a "hung" bound
	for {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("program never became ready (hung)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("runCmd = %v (output %q); want success: the program exited with status 0", r.err, r.out)
		}
	case <-time.After(time.Minute):
		t.Fatal("runCmd never returned (hung)")
	}
	if _, err := os.Stat(filepath.Join(dir, "interrupted")); err != nil {
		t.Fatalf("program was not interrupted: %v", err)
	}
}

// TestStartCancelled cancels Start at various points (during initdb, around
// pg_ctl start): it must leave no server running, and a later Start must work.
func TestStartCancelled(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), d)
			defer cancel()
			s, err := Start(ctx, Config{DataDir: dir, Logger: testLogger(t), Fast: true})
			if err == nil {
				t.Logf("Start finished within %s", d)
				if err := s.Stop(t.Context()); err != nil {
					t.Fatal(err)
				}
			} else {
				t.Logf("cancelled Start: %v", err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want context.DeadlineExceeded", err)
				}
				if pid, state, _ := readPostmaster(filepath.Join(dir, pgdataName)); state == postmasterAlive {
					t.Errorf("cancelled Start left postmaster %d running", pid)
				}
			}
			s = startServer(t, dir, true)
			if !s.Started() {
				t.Fatal("Started() = false")
			}
			conn := connect(t, s.URL("postgres"))
			if n := count(t, conn, "select 1"); n != 1 {
				t.Fatal("select 1")
			}
		})
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	b, err := findBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err) // the other tests need them too
	}
	for _, p := range []string{b.initdb, b.pgCtl, b.postgres} {
		if !filepath.IsAbs(p) {
			t.Errorf("%q is not absolute", p)
		}
	}
}

func TestSortByVersionDesc(t *testing.T) {
	dirs := []string{
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/15/bin",
		"/usr/lib/postgresql/x/bin",
		"/usr/lib/postgresql/16/bin",
	}
	sortByVersionDesc(dirs)
	want := []string{
		"/usr/lib/postgresql/16/bin",
		"/usr/lib/postgresql/15/bin",
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/x/bin",
	}
	if !reflect.DeepEqual(dirs, want) {
		t.Errorf("got %v, want %v", dirs, want)
	}
}

func TestConfQuote(t *testing.T) {
	if got, want := confQuote(`/a'b\c`), `'/a''b\\c'`; got != want {
		t.Errorf("confQuote = %s, want %s", got, want)
	}
}
