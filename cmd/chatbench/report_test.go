package main

import (
	"strings"
	"testing"
)

// The CPU lines of the send scenarios add the CPU time per send.
func TestCPULinesPerSend(t *testing.T) {
	r := &results{Settings: settings{CPUs: 2},
		A: &sendLoadResult{Sends: summary{Rate: 2000, CPU: &cpuUse{Chatd: 0.5, Postgres: 0.7, Chatbench: 0.2}}},
		B: &sendLoadResult{Sends: summary{CPU: &cpuUse{Chatd: 0.5}}}, // no send went through
	}
	lines := cpuLines(r)
	if len(lines) != 2 {
		t.Fatalf("lines %q; want a and b", lines)
	}
	if want := "per send chatd 0.250 + postgres 0.350 + chatbench 0.100 = 0.700 ms"; !strings.Contains(lines[0], want) {
		t.Errorf("a: %q; want it to say %q", lines[0], want)
	}
	if strings.Contains(lines[1], "per send") {
		t.Errorf("b: %q; no rate, no per-send figure", lines[1])
	}
}
