// Command chatbench measures the chat server over real HTTP and WebSocket
// connections and prints a table of results with the goals they are held
// to.
//
// Run it from the module (it builds cmd/chatd unless given -chatd):
//
//	go run ./cmd/chatbench                      # every scenario but g, about 4 minutes
//	make bench-api                              # the same
//	go run ./cmd/chatbench -scenarios g         # cost growth, a few minutes
//	make bench-growth                           # the same
//	go run ./cmd/chatbench -scenarios a,b -duration 5s
//	go run ./cmd/chatbench -json results.json   # also write the results as JSON
//
// Each run starts its own PostgreSQL (embeddedpg, durable settings) in a
// temporary folder, runs chatd as a child process on a free 127.0.0.1 port
// against it (so that its resident memory can be read from /proc), and
// registers the users the scenarios act as. It then measures:
//
//	baseline  single-row INSERT transactions into a plain table on the same
//	          PostgreSQL from 16 connections: what a durable send competes with
//	a         16 clients posting to random rooms of theirs among 100 rooms
//	b         16 clients posting to one hot room
//	c         sends and newest-page lists in a room of 100,000 messages
//	          against an empty room
//	d         fan-out: 2,000 WebSockets in 200 rooms of 10 members receive
//	          messages posted over REST at a fixed rate; every delivery is
//	          counted and timed
//	e         chatd's resident memory per idle WebSocket (10,000 of them)
//	r         read-your-writes: a list right after the client's own send
//	          against lists with no writes going on (half -duration each)
//	g         cost growth (only when asked for: make bench-growth): for each
//	          cell of -growth-events x -growth-rooms, a fresh database with
//	          a synthetic log of that many events over that many rooms,
//	          the read model rebuilt from it, and chatd on it; then sends
//	          to random rooms and lists of random rooms (a third of
//	          -duration each), next to the baseline's INSERTs in the same
//	          cell
//
// c also times the first send to each room after a chatd restart, when the
// room's state is not cached, and lists the big room as it stood halfway
// through its pre-fill (?as_of=, read from the log) against its newest
// page. Every load is bounded by -duration after a
// -warmup that is not measured. chatd is built from the working tree; pass
// -chatd to measure a fixed binary. The machine is shared by chatd,
// PostgreSQL and the benchmark: the details list how much CPU each (and
// any other process) used in each window.
//
// Exit status: 0 when every scenario ran, whether or not it met its goal
// (it is a measurement); 1 when a scenario could not run or requests
// failed; 2 on bad flags. Ctrl-C stops chatd and PostgreSQL and removes the
// temporary folder; a second Ctrl-C exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	scenarios   []string
	duration    time.Duration
	warmup      time.Duration
	rate        int
	sockets     int
	idleSockets int
	idleSettle  time.Duration
	prefill     int
	growth      growthGrid
	chatd       string
	chatdArgs   []string
	jsonPath    string
	statements  int
	cpuProfile  string
}

var allScenarios = []string{"a", "b", "c", "d", "e", "g", "r"}

// defaultScenarios run when -scenarios is not given: g, which takes minutes
// of set-up, runs only when asked for.
var defaultScenarios = []string{"a", "b", "c", "d", "e", "r"}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	list := fs.String("scenarios", strings.Join(defaultScenarios, ","), "scenarios to run, comma-separated (a,b,c,d,e,g,r)")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "measured time of each load")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each load")
	fs.IntVar(&o.rate, "rate", 1000, "d: total sends per second")
	fs.IntVar(&o.sockets, "sockets", 2000, "d: WebSockets (rooms of 10 members, one socket per member)")
	fs.IntVar(&o.idleSockets, "idle-sockets", 10000, "e: idle WebSockets")
	fs.DurationVar(&o.idleSettle, "idle-settle", 5*time.Second, "e: wait after opening the idle sockets before reading chatd's memory")
	fs.IntVar(&o.prefill, "prefill", 100000, "c: messages in the big room")
	growthEvents := fs.String("growth-events", "1k,100k,1M", "g: log lengths in events, comma-separated (k = 1,000, M = 1,000,000)")
	growthRooms := fs.String("growth-rooms", "10,1k,100k", "g: numbers of rooms, comma-separated")
	fs.StringVar(&o.chatd, "chatd", "", "chatd binary (default: go build ./cmd/chatd into the temporary folder)")
	chatdArgs := fs.String("chatd-args", "", "extra chatd flags, space-separated (e.g. \"-debug-addr 127.0.0.1:6060\" to profile it)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results to this file as JSON")
	fs.IntVar(&o.statements, "pg-statements", 0, "after each scenario, print the N statements that took PostgreSQL the most time in it (pg_stat_statements)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of chatbench itself (the load client, not chatd) to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.chatdArgs = strings.Fields(*chatdArgs)
	var err error
	if o.growth.events, err = parseCounts(*growthEvents); err != nil {
		return o, fmt.Errorf("-growth-events: %w", err)
	}
	if o.growth.rooms, err = parseCounts(*growthRooms); err != nil {
		return o, fmt.Errorf("-growth-rooms: %w", err)
	}
	for _, s := range strings.Split(*list, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return o, fmt.Errorf("-scenarios: unknown scenario %q (want some of %s)", s, strings.Join(allScenarios, ","))
		}
		if !slices.Contains(o.scenarios, s) {
			o.scenarios = append(o.scenarios, s)
		}
	}
	slices.Sort(o.scenarios)
	switch {
	case o.duration < time.Second:
		return o, errors.New("-duration must be at least 1s")
	case o.warmup < 0:
		return o, errors.New("-warmup must not be negative")
	case o.rate < 1:
		return o, errors.New("-rate must be positive")
	case o.sockets < fanoutRoomSize:
		return o, fmt.Errorf("-sockets must be at least %d", fanoutRoomSize)
	case o.idleSockets < 1:
		return o, errors.New("-idle-sockets must be positive")
	case o.idleSettle < 0:
		return o, errors.New("-idle-settle must not be negative")
	case o.statements < 0:
		return o, errors.New("-pg-statements must not be negative")
	case o.prefill < 0:
		return o, errors.New("-prefill must not be negative")
	}
	if o.chatd != "" {
		if _, err := os.Stat(o.chatd); err != nil {
			return o, fmt.Errorf("-chatd: %w", err)
		}
	}
	return o, nil
}

func main() { os.Exit(run()) }

func run() int {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // from now on a second Ctrl-C ends the process at once
	}()
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chatbench:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "chatbench:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "chatbench:", err)
			}
		}()
	}
	if err := raiseOpenFiles(); err != nil {
		fmt.Fprintln(os.Stderr, "chatbench: raising RLIMIT_NOFILE:", err)
	}

	res := &results{
		Settings: settings{
			Scenarios: strings.Join(opts.scenarios, ","), Duration: opts.duration.String(), Warmup: opts.warmup.String(),
			Rate: opts.rate, Sockets: opts.sockets, IdleSockets: opts.idleSockets, Prefill: opts.prefill,
			GrowthEvents: formatCounts(opts.growth.events), GrowthRooms: formatCounts(opts.growth.rooms),
			CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Started: time.Now().UTC(),
		},
		Failed: map[string]string{},
	}
	e, err := setup(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "chatbench: interrupted")
			return 130
		}
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		return 1
	}
	runScenarios(ctx, e, res)
	e.logf("stopping chatd and PostgreSQL")
	res.ServerLog = e.close()
	res.Errors = e.errs.lines()
	res.Goals = evaluate(res)
	res.Settings.Seconds = time.Since(e.began).Seconds()
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "chatbench: interrupted; partial results:")
	}
	printReport(os.Stdout, res)
	if opts.jsonPath != "" {
		if err := writeJSON(opts.jsonPath, res); err != nil {
			fmt.Fprintln(os.Stderr, "chatbench:", err)
			return 1
		}
	}
	switch {
	case ctx.Err() != nil:
		return 130
	case len(res.Failed) > 0 || len(res.Errors) > 0:
		return 1
	}
	return 0
}

// runScenarios registers the users, then runs the baseline and the chosen
// scenarios in order, each after a CHECKPOINT. A scenario that fails is
// recorded and the next one runs, unless chatd died, the users could not be
// registered, or the run was interrupted.
func runScenarios(ctx context.Context, e *env, res *results) {
	try := func(name string, fn func() error) bool {
		if ctx.Err() != nil {
			return false
		}
		if err := e.checkServer(); err != nil {
			res.Failed[name] = err.Error()
			return false
		}
		err := e.checkpoint(ctx)
		if err == nil && e.opts.statements > 0 {
			err = e.resetStatements(ctx)
		}
		if err == nil {
			err = fn()
		}
		if err == nil && e.opts.statements > 0 {
			err = e.logStatements(ctx, name, e.opts.statements)
		}
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			if serr := e.checkServer(); serr != nil {
				err = fmt.Errorf("%w (%v)", err, serr)
			}
			res.Failed[name] = err.Error()
			e.logf("%s failed: %v", name, err)
			return name != "users" // the scenarios need them
		}
		return true
	}
	var err error
	if !try("users", func() error { return e.provisionUsers(ctx, usersNeeded(e.opts)) }) {
		return
	}
	try("baseline", func() error { res.Baseline, err = runBaseline(ctx, e); return err })
	for _, s := range e.opts.scenarios {
		ok := try(s, func() error {
			switch s {
			case "a":
				res.A, err = runA(ctx, e)
			case "b":
				res.B, err = runB(ctx, e)
			case "c":
				res.C, err = runC(ctx, e)
			case "d":
				res.D, err = runD(ctx, e)
			case "e":
				res.E, err = runE(ctx, e)
			case "g":
				res.G, err = runG(ctx, e)
			case "r":
				res.R, err = runR(ctx, e)
			}
			return err
		})
		if !ok {
			return
		}
	}
}

// usersNeeded is how many users the chosen scenarios act as; they are
// registered up front and shared.
func usersNeeded(o options) int {
	n := max(loadClients, bigRoomMembers)
	for _, s := range o.scenarios {
		switch s {
		case "d":
			n = max(n, min(fanoutMaxUsers, o.sockets/fanoutRoomSize))
		case "e":
			n = max(n, idleUsers)
		}
	}
	return n
}
