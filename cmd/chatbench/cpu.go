package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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

const clockTicks = 100 // USER_HZ: the unit of /proc/PID/stat times on Linux

// cpuNow samples the CPU time used so far by chatd, by the postmaster and
// its children, and by this process.
func (e *env) cpuNow() cpuSample {
	s := cpuSample{at: time.Now(), machine: machineBusy()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.chatbench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if e.srv != nil {
		s.chatd, _, _ = procCPU(e.srv.cmd.Process.Pid)
	}
	if pm := postmasterPID(filepath.Join(e.tmp, "pg", "pgdata")); pm > 0 {
		entries, _ := os.ReadDir("/proc")
		for _, d := range entries {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			if t, ppid, ok := procCPU(pid); ok && (pid == pm || ppid == pm) {
				s.postgres += t
			}
		}
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

// machineBusy is the busy time of all CPUs from /proc/stat (user, nice,
// system, irq, softirq).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// procCPU reads a process's user+system time and parent from /proc/PID/stat.
func procCPU(pid int) (time.Duration, int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis (field 3, state, is f[0]).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks, ppid, true
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
