package embeddedpg

// The helpers of Start and Stop: readiness pings, running the PostgreSQL
// programs, the postmaster.pid file, free ports and the server log.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func ping(ctx context.Context, connURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	return conn.QueryRow(ctx, "select 1").Scan(&one)
}

// cmdError describes a failed program run, with its output if any.
func cmdError(what string, err error, out string) error {
	if out == "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %s", what, err, out)
}

// runCmd runs a PostgreSQL program as the server account and returns its
// combined output. Cancelling ctx interrupts the program (SIGINT, which lets
// initdb clean up and pg_ctl stop a half-started server), then kills it.
func (s *Server) runCmd(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.dataDir // the programs need a current folder they can reach
	cmd.Env = childEnv()
	cmd.SysProcAttr = s.runAs.sysProcAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) &&
		cmd.ProcessState != nil && cmd.ProcessState.Success():
		// The program did its work: os/exec reports ctx's error when ctx
		// ended while the program ran, even if it then exited with success
		// (the interrupt came too late to stop it). A finished initdb or
		// pg_ctl counts as finished, or what it made (a cluster, a
		// started or stopped server) would be treated as never made.
		err = nil
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return strings.TrimSpace(out.String()), err
}

// childEnv is the environment without PG* variables, which could point the
// programs at another cluster or port.
func childEnv() []string {
	env := os.Environ()
	kept := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PG") {
			kept = append(kept, kv)
		}
	}
	return kept
}

// postmasterState classifies pgdata/postmaster.pid.
type postmasterState int

const (
	postmasterNone  postmasterState = iota // no postmaster.pid
	postmasterStale                        // postmaster.pid of a postmaster that is gone
	postmasterAlive                        // postmaster.pid of a running postmaster
)

// readPostmaster reads pgdata/postmaster.pid and checks whether the process
// it names is a live postgres serving pgdata.
func readPostmaster(pgdata string) (int, postmasterState, error) {
	data, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, postmasterNone, nil
	}
	if err != nil {
		return 0, postmasterNone, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, postmasterStale, nil // garbage, e.g. a torn write
	}
	if !postgresAlive(pid, pgdata) {
		return pid, postmasterStale, nil
	}
	return pid, postmasterAlive, nil
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process may
// take it before postgres binds it; run retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	return port, nil
}

func portTaken(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "could not bind")
}

// confQuote quotes s as a postgresql.conf string.
func confQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the end (at most 4 KiB) of the log written after offset.
func logTail(path string, offset int64) string {
	const maxTail = 4 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	if size := fileSize(path); size-offset > maxTail {
		offset = size - maxTail
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTail))
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "(empty)"
	}
	return strings.TrimRight(string(data), "\n")
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so that readers in other processes never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
