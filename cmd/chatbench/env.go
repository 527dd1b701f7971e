package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evchat/evchat/internal/embeddedpg"
)

// env is everything one run measures against: a private PostgreSQL, chatd
// as a child process on it, and the users the scenarios act as.
type env struct {
	opts  options
	tmp   string
	pg    *embeddedpg.Server
	dbURL string
	bin   string
	srv   *chatdProc
	api   *api
	users []*user
	errs  *errorLog
	began time.Time
}

// logf prints a progress line to stderr.
func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(e.began).Seconds(), fmt.Sprintf(format, args...))
}

// setup builds the environment step by step. On failure it releases what it
// took; otherwise the caller calls close.
func setup(ctx context.Context, opts options) (_ *env, err error) {
	e := &env{opts: opts, errs: &errorLog{}, began: time.Now()}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.tmp, err = os.MkdirTemp("", "chatbench-"); err != nil {
		return nil, err
	}
	e.bin = opts.chatd
	if e.bin == "" {
		e.logf("building chatd")
		if e.bin, err = buildChatd(ctx, e.tmp); err != nil {
			return nil, err
		}
	}
	e.logf("starting PostgreSQL (durable settings) in %s", e.tmp)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := embeddedpg.Config{DataDir: filepath.Join(e.tmp, "pg"), Logger: quiet}
	if opts.statements > 0 {
		cfg.PreloadLibraries = []string{statementsLibrary}
	}
	if e.pg, err = embeddedpg.Start(ctx, cfg); err != nil {
		return nil, err
	}
	e.dbURL = e.pg.URL("postgres")
	if opts.statements > 0 {
		if err := e.enableStatements(ctx); err != nil {
			return nil, fmt.Errorf("pg_stat_statements: %w", err)
		}
	}
	if err := e.startChatd(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) startChatd(ctx context.Context, extra ...string) error {
	return e.startChatdOn(ctx, e.dbURL, e.dataDir(), extra...)
}

// dataDir is the data folder of chatd on the run's own database.
func (e *env) dataDir() string { return filepath.Join(e.tmp, "chatd-data") }

// startChatdOn starts chatd on databaseURL with its data folder in dataDir,
// with extra flags before the -chatd-args ones, and points the client at
// it.
func (e *env) startChatdOn(ctx context.Context, databaseURL, dataDir string, extra ...string) error {
	srv, err := startChatd(ctx, e.bin, databaseURL, dataDir, filepath.Join(e.tmp, "chatd.log"), slices.Concat(extra, e.opts.chatdArgs))
	if err != nil {
		return err
	}
	e.srv = srv
	if e.api == nil {
		e.api = newAPI("http://" + srv.addr)
	} else {
		e.api.base = "http://" + srv.addr // no request is in flight between scenarios
	}
	e.logf("chatd running (pid %d) on %s", srv.cmd.Process.Pid, srv.addr)
	return nil
}

// stopChatd stops chatd, if it runs.
func (e *env) stopChatd() error {
	if e.srv == nil {
		return nil
	}
	err := e.srv.stop()
	e.srv = nil
	return err
}

// switchChatd replaces chatd with a fresh process on databaseURL, with
// extra flags before the -chatd-args ones.
func (e *env) switchChatd(ctx context.Context, databaseURL, dataDir string, extra ...string) error {
	if err := e.stopChatd(); err != nil {
		return err
	}
	return e.startChatdOn(ctx, databaseURL, dataDir, extra...)
}

// restartChatd replaces chatd with a fresh process on the same database,
// with extra flags before the -chatd-args ones.
func (e *env) restartChatd(ctx context.Context, extra ...string) error {
	return e.switchChatd(ctx, e.dbURL, e.dataDir(), extra...)
}

// checkServer returns an error once chatd has died.
func (e *env) checkServer() error {
	if e.srv == nil {
		return errors.New("chatd is not running")
	}
	if gone, err := e.srv.exited(); gone {
		return fmt.Errorf("chatd exited unexpectedly (%v); its log:\n%s", err, tail(e.srv.logPath, 20))
	}
	return nil
}

// close stops chatd and PostgreSQL and removes the temporary folder. It
// returns the server log's warnings and errors, read before removal.
func (e *env) close() []string {
	var notes []string
	if e.srv != nil {
		if err := e.srv.stop(); err != nil {
			notes = append(notes, err.Error())
		}
	}
	if e.tmp != "" {
		notes = append(notes, serverLogNotes(filepath.Join(e.tmp, "chatd.log"))...)
	}
	if e.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := e.pg.Stop(ctx); err != nil {
			notes = append(notes, err.Error())
		}
		cancel()
	}
	if e.tmp != "" {
		if err := os.RemoveAll(e.tmp); err != nil {
			notes = append(notes, err.Error())
		}
	}
	return notes
}

// serverLogNotes summarises chatd's log (warn level and above: everything it
// wrote) as distinct messages with counts.
func serverLogNotes(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	counts := map[string]int{}
	var order []string
	dec := json.NewDecoder(f)
	for {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Err   string `json:"err"`
		}
		if err := dec.Decode(&line); err != nil {
			if !errors.Is(err, io.EOF) {
				rest, _ := io.ReadAll(io.LimitReader(dec.Buffered(), 300))
				order = append(order, "unparsed output: "+strings.TrimSpace(string(rest)))
				counts[order[len(order)-1]] = 1
			}
			break
		}
		key := line.Level + " " + line.Msg
		if line.Err != "" {
			key += ": " + line.Err
		}
		if _, ok := counts[key]; !ok {
			order = append(order, key)
		}
		counts[key]++
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, fmt.Sprintf("chatd log: %s (x%d)", k, counts[k]))
	}
	return out
}

// provisionUsers registers and logs in n users, a few at a time: password
// hashing makes each take tens of milliseconds of server CPU.
func (e *env) provisionUsers(ctx context.Context, n int) error {
	if len(e.users) >= n {
		return nil
	}
	e.logf("registering and logging in %d users", n-len(e.users))
	tag := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	from := len(e.users)
	users := make([]*user, n-from)
	err := parallel(ctx, len(users), 6, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("bench_%s_%d", tag, from+i)
		password := "bench-password-" + name
		id, err := e.api.register(ctx, name, password)
		if err != nil {
			return err
		}
		token, err := e.api.login(ctx, name, password)
		if err != nil {
			return err
		}
		users[i] = &user{id: id, name: name, token: token}
		return nil
	})
	if err != nil {
		return fmt.Errorf("provision users: %w", err)
	}
	e.users = append(e.users, users...)
	return nil
}

// exec runs sql on the run's database, on a connection of its own.
func (e *env) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// checkpoint runs CHECKPOINT, so that a measured phase does not pay for
// flushing what earlier work dirtied.
func (e *env) checkpoint(ctx context.Context) error {
	return e.exec(ctx, "CHECKPOINT")
}

// room is a group room and its members.
type room struct {
	id      int64
	members []*user
}

// createRooms creates n group rooms of size members each, drawn from pool:
// room r holds pool[(r*size+k) % len(pool)] for k < size, so every user is
// in about the same number of rooms. The first member creates the room.
func (e *env) createRooms(ctx context.Context, label string, pool []*user, n, size int) ([]room, error) {
	if size > len(pool) {
		return nil, fmt.Errorf("%s: rooms of %d members need %d users, have %d", label, size, size, len(pool))
	}
	rooms := make([]room, n)
	err := parallel(ctx, n, 8, func(ctx context.Context, r int) error {
		members := make([]*user, size)
		others := make([]int64, 0, size-1)
		for k := range size {
			members[k] = pool[(r*size+k)%len(pool)]
			if k > 0 {
				others = append(others, members[k].id)
			}
		}
		id, err := e.api.createGroup(ctx, members[0], fmt.Sprintf("%s room %d", label, r), others)
		if err != nil {
			return err
		}
		rooms[r] = room{id: id, members: members}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: create rooms: %w", label, err)
	}
	return rooms, nil
}
