package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/evchat/evchat/internal/wait"
)

// idleResult is the server's memory cost of idle sockets.
type idleResult struct {
	Skipped      string  `json:"skipped,omitempty"`
	Sockets      int     `json:"sockets"`
	Rooms        int     `json:"rooms"`
	Users        int     `json:"users"`
	OpenSeconds  float64 `json:"open_seconds"`
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	KiBPerSocket float64 `json:"kib_per_socket"`
	// Before and After are chatd's Go memory at the two RSS readings, each
	// taken after a garbage collection (nil: chatd's debug listener did not
	// answer); HeapKiBPerSocket (live heap) and StackKiBPerSocket (goroutine
	// stacks) are the parts of the cost the runtime accounts for.
	Before            *goMemory `json:"go_before,omitempty"`
	After             *goMemory `json:"go_after,omitempty"`
	HeapKiBPerSocket  float64   `json:"heap_kib_per_socket,omitempty"`
	StackKiBPerSocket float64   `json:"stack_kib_per_socket,omitempty"`
	SettleSeconds     float64   `json:"settle_seconds"`
	// UnexpectedClosures are sockets the server closed while idle.
	UnexpectedClosures map[string]int `json:"unexpected_closures,omitempty"`
}

const (
	idleRooms    = 200
	idleRoomSize = 10
	idleUsers    = 100
	fdReserve    = 1024 // descriptors kept for everything but the sockets
)

// runE measures chatd's resident memory before and after opening
// opts.idleSockets idle sockets, spread evenly over idleRooms rooms (each
// member of a room holds several). chatd is restarted first, so that memory
// earlier work left in its heap neither hides nor inflates the cost.
func runE(ctx context.Context, e *env) (*idleResult, error) {
	n := e.opts.idleSockets
	res := &idleResult{Sockets: n, Rooms: idleRooms}
	if why := idleSocketLimits(n); why != "" {
		res.Skipped = why
		e.logf("e: skipped: %s", why)
		return res, nil
	}
	if err := e.provisionUsers(ctx, idleUsers); err != nil {
		return nil, err
	}
	res.Users = idleUsers
	rooms, err := e.createRooms(ctx, "e", e.users[:idleUsers], idleRooms, idleRoomSize)
	if err != nil {
		return nil, err
	}
	// A debug listener lets the benchmark collect chatd's garbage before
	// each reading and read its Go memory (unless -chatd-args gives one).
	debug := flagValue(e.opts.chatdArgs, "debug-addr")
	var extra []string
	if debug == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		debug = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		extra = []string{"-debug-addr", debug}
	}
	e.logf("e: restarting chatd for a clean memory baseline")
	if err := e.restartChatd(ctx, extra...); err != nil {
		return nil, err
	}
	if lim, err := e.srv.openFilesLimit(); err == nil && lim < uint64(n+fdReserve) {
		res.Skipped = fmt.Sprintf("chatd may open only %d files; %d idle sockets need about %d", lim, n, n+fdReserve)
		e.logf("e: skipped: %s", res.Skipped)
		return res, nil
	}
	specs := make([]socketSpec, n)
	for i := range specs {
		r := rooms[i%len(rooms)]
		specs[i] = socketSpec{user: r.members[(i/len(rooms))%len(r.members)], room: r.id}
	}

	// Warm the code paths (and pools) a socket uses, then settle.
	warm, err := openSockets(ctx, e.api, specs[:min(100, n)], 16, nil)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	closeSockets(warm)
	if err := wait.Sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	res.Before = settledMemory(ctx, debug)
	if res.RSSBeforeKiB, err = e.srv.rssKiB(); err != nil {
		return nil, err
	}

	e.logf("e: opening %d idle sockets in %d rooms (chatd RSS before: %.1f MiB)", n, len(rooms), float64(res.RSSBeforeKiB)/1024)
	t0 := time.Now()
	socks, err := openSockets(ctx, e.api, specs, 64, nil)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	defer closeSockets(socks)
	res.OpenSeconds = time.Since(t0).Seconds()
	e.logf("e: %d sockets open after %.1fs; settling for %s", n, res.OpenSeconds, e.opts.idleSettle)
	if err := wait.Sleep(ctx, e.opts.idleSettle); err != nil {
		return nil, err
	}
	res.SettleSeconds = e.opts.idleSettle.Seconds()
	res.After = settledMemory(ctx, debug)
	if res.RSSAfterKiB, err = e.srv.rssKiB(); err != nil {
		return nil, err
	}
	res.UnexpectedClosures = unexpectedClosures(socks)
	res.KiBPerSocket = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(n)
	if res.Before != nil && res.After != nil {
		res.HeapKiBPerSocket = float64(res.After.HeapAlloc-res.Before.HeapAlloc) / 1024 / float64(n)
		res.StackKiBPerSocket = float64(res.After.Stack-res.Before.Stack) / 1024 / float64(n)
	}
	return res, nil
}

// goMemory is part of a Go process's runtime.MemStats, in bytes.
type goMemory struct {
	HeapAlloc  int64 `json:"heap_alloc"`  // live objects (and garbage not yet swept)
	HeapInuse  int64 `json:"heap_inuse"`  // spans holding objects
	HeapIdle   int64 `json:"heap_idle"`   // spans free, resident or released
	Released   int64 `json:"released"`    // of HeapIdle, returned to the OS
	Stack      int64 `json:"stack_inuse"` // goroutine stacks
	Goroutines int   `json:"goroutines"`
}

// settledMemory collects chatd's garbage twice (the second pass frees
// what the first only finalized, and shrinks stacks once more), waits a
// second, and returns its Go memory; nil if the debug listener at addr
// does not answer.
func settledMemory(ctx context.Context, addr string) *goMemory {
	get := func(path string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", path, resp.Status)
		}
		return string(b), err
	}
	for range 2 {
		if _, err := get("/debug/pprof/heap?gc=1"); err != nil {
			return nil
		}
	}
	if wait.Sleep(ctx, time.Second) != nil {
		return nil
	}
	text, err := get("/debug/pprof/heap?debug=1")
	if err != nil {
		return nil
	}
	var m goMemory
	for line := range strings.Lines(text) {
		name, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "# "), " = ")
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(value, " ") // "Stack = inuse / sys"
		v, err := strconv.ParseInt(first, 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "HeapAlloc":
			m.HeapAlloc = v
		case "HeapInuse":
			m.HeapInuse = v
		case "HeapIdle":
			m.HeapIdle = v
		case "HeapReleased":
			m.Released = v
		case "Stack":
			m.Stack = v
		}
	}
	if text, err := get("/debug/pprof/goroutine?debug=1"); err == nil {
		// "goroutine profile: total N"
		first, _, _ := strings.Cut(text, "\n")
		if _, n, ok := strings.Cut(first, "total "); ok {
			m.Goroutines, _ = strconv.Atoi(strings.TrimSpace(n))
		}
	}
	return &m
}

// flagValue returns the value of -name (or --name) in args: "-name v" or
// "-name=v"; "" when absent.
func flagValue(args []string, name string) string {
	v := ""
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		switch {
		case a == name && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, name+"="):
			v = a[len(name)+1:]
		}
	}
	return v
}

// idleSocketLimits explains why this machine cannot hold n more sockets to
// chatd, or returns "". The benchmark's own limit was raised to the hard
// limit at start.
func idleSocketLimits(n int) string {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "cannot read RLIMIT_NOFILE: " + err.Error()
	}
	if rl.Cur < uint64(n+fdReserve) {
		return fmt.Sprintf("RLIMIT_NOFILE is %d (hard %d); %d idle sockets need about %d: raise the hard limit (ulimit -Hn, limits.conf)",
			rl.Cur, rl.Max, n, n+fdReserve)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && hi-lo+1 < n+fdReserve {
				return fmt.Sprintf("only %d local ports (net.ipv4.ip_local_port_range %d-%d) for %d sockets", hi-lo+1, lo, hi, n)
			}
		}
	}
	return ""
}

// raiseOpenFiles sets the soft limit on open files to the hard limit.
func raiseOpenFiles() error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur >= rl.Max {
		return nil
	}
	rl.Cur = rl.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
}
