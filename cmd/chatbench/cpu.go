package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/evchat/evchat/internal/proccpu"
)

// The scenarios share the machine's cores with chatd and PostgreSQL, so each
// load reports how much CPU each of the three used during its window.

// cpuUse is CPU time over a window, in cores (1.0 = one core busy).
type cpuUse struct {
	Chatd     float64 `json:"chatd"`
	Postgres  float64 `json:"postgres"`
	Chatbench float64 `json:"chatbench"`
	// Other is what the rest of the machine used: other work on a shared
	// machine makes the numbers noisy.
	Other float64 `json:"other"`
}

// cpuSample is cumulative CPU time at an instant.
type cpuSample struct {
	at                         time.Time
	chatd, postgres, chatbench time.Duration
	machine                    time.Duration // all CPUs, busy
}

// cpuNow samples the CPU time used so far by chatd, by the postmaster and
// its children, and by this process.
func (e *env) cpuNow() cpuSample {
	s := cpuSample{at: time.Now(), machine: proccpu.MachineBusy()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.chatbench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if e.srv != nil {
		s.chatd, _, _ = proccpu.Of(e.srv.cmd.Process.Pid)
	}
	if pm := postmasterPID(filepath.Join(e.tmp, "pg", "pgdata")); pm > 0 {
		s.postgres = proccpu.Family(pm)
	}
	return s
}

// since is the CPU used from an earlier sample to this one, in cores.
func (s cpuSample) since(from cpuSample) *cpuUse {
	wall := s.at.Sub(from.at).Seconds()
	if wall <= 0 {
		return nil
	}
	u := &cpuUse{
		Chatd:     (s.chatd - from.chatd).Seconds() / wall,
		Postgres:  (s.postgres - from.postgres).Seconds() / wall,
		Chatbench: (s.chatbench - from.chatbench).Seconds() / wall,
	}
	u.Other = max(0, (s.machine-from.machine).Seconds()/wall-u.Chatd-u.Postgres-u.Chatbench)
	return u
}

// postmasterPID reads the first line of pgdata/postmaster.pid.
func postmasterPID(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}
