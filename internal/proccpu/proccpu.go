// Package proccpu reads how much CPU processes have used, from /proc
// (Linux): what the benchmarks quote beside their latencies, since CPU time
// varies less than elapsed time on a shared machine.
package proccpu

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times on Linux.
const clockTicks = 100

// stat reads a process's parent and its utime, stime, cutime and cstime
// (the last two: its children that have ended and been waited for).
func stat(pid int) (ppid int, ticks [4]int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, ticks, false
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis (field 3, state, is f[0]).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, ticks, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, ticks, false
	}
	ppid, _ = strconv.Atoi(f[1])
	for k := range ticks {
		ticks[k], _ = strconv.ParseInt(f[11+k], 10, 64)
	}
	return ppid, ticks, true
}

func duration(ticks int64) time.Duration { return time.Duration(ticks) * time.Second / clockTicks }

// Of returns the user and system time a process has used, and its parent;
// ok false when it cannot be read (gone, or not Linux).
func Of(pid int) (cpu time.Duration, parent int, ok bool) {
	ppid, t, ok := stat(pid)
	return duration(t[0] + t[1]), ppid, ok
}

// Family returns the CPU time of a process and its children: its own, that
// of its children that have ended, and that of those still running (a
// PostgreSQL postmaster and its backends, say).
func Family(pid int) time.Duration {
	_, t, ok := stat(pid)
	if !ok {
		return 0
	}
	total := t[0] + t[1] + t[2] + t[3]
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		child, err := strconv.Atoi(d.Name())
		if err != nil || child == pid {
			continue
		}
		if ppid, ct, ok := stat(child); ok && ppid == pid {
			total += ct[0] + ct[1]
		}
	}
	return duration(total)
}

// MachineBusy is the busy time of all CPUs (user, nice, system, irq,
// softirq) from /proc/stat.
func MachineBusy() time.Duration {
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
	return duration(ticks)
}
