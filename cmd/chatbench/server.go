package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// chatdProc is chatd running as a child process.
type chatdProc struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done
}

// buildChatd compiles cmd/chatd into dir and returns the binary's path.
func buildChatd(ctx context.Context, dir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not on PATH: build chatd yourself and pass -chatd PATH")
	}
	bin := filepath.Join(dir, "chatd")
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, "github.com/evchat/evchat/cmd/chatd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build chatd: %w\n%s", err, out)
	}
	return bin, nil
}

// startChatd starts bin on a free 127.0.0.1 port against databaseURL, with
// its data folder in dataDir and its output appended to logPath, and waits
// until it answers /healthz. extra flags follow the benchmark's own.
func startChatd(ctx context.Context, bin, databaseURL, dataDir, logPath string, extra []string) (*chatdProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := append([]string{"-addr", addr, "-database-url", databaseURL, "-data-dir", dataDir, "-log-level", "warn",
		// The scenarios open more sockets per user and per process than
		// chatd allows by default: they measure fan-out, not the caps.
		"-ws-per-user", "1000000", "-ws-max", "1000000",
		// Its clients send far faster than a person: the per-user and
		// per-address rate limits would refuse most of the load.
		"-rate-send", "off", "-rate-read", "off", "-rate-register", "off"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C in the terminal reaches only the
	// benchmark, which then stops chatd in order. Pdeathsig stops it if the
	// benchmark is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start chatd: %w", err)
	}
	p := &chatdProc{cmd: cmd, addr: addr, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	c := newAPI("http://" + addr)
	deadline := time.Now().Add(60 * time.Second)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		ok := c.healthy(hctx)
		cancel()
		if ok {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("chatd exited during start-up (%v); its log:\n%s", p.waitErr, tail(logPath, 20))
		case <-ctx.Done():
			_ = p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return nil, fmt.Errorf("chatd did not answer /healthz within 60s; its log:\n%s", tail(logPath, 20))
		}
	}
}

// childEnv is the benchmark's environment without the variables chatd reads,
// so that only the flags configure it; access tokens outlive any run.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CHAT_") || k == "DATABASE_URL" || k == "EVENTSTORE_URL" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CHAT_ACCESS_TTL=2h")
}

// stop sends SIGTERM and waits for the process to exit (SIGKILL after 20s).
func (p *chatdProc) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("chatd did not stop within 20s of SIGTERM; killed")
	}
}

// exited reports whether the process has ended, and how.
func (p *chatdProc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// rssKiB reads the process's resident set size (VmRSS) in KiB.
func (p *chatdProc) rssKiB() (int64, error) {
	return procStatusKiB(p.cmd.Process.Pid, "VmRSS")
}

// openFilesLimit reads the process's soft limit on open files.
func (p *chatdProc) openFilesLimit() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if f[0] == "unlimited" {
					return 1 << 62, nil
				}
				return strconv.ParseUint(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no Max open files line in /proc/PID/limits")
}

func procStatusKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
