package proccpu

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

func TestOfAndFamily(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	// Burn CPU until the counter (in 10 ms ticks) moves.
	self, parent, ok := Of(os.Getpid())
	for x := 0; ok && self == 0; self, parent, ok = Of(os.Getpid()) {
		for i := range 10_000_000 {
			x ^= i
		}
		sink = x
	}
	if !ok || parent != os.Getppid() || self <= 0 {
		t.Fatalf("Of(self) = %v, parent %d, %v; want some CPU, parent %d", self, parent, ok, os.Getppid())
	}
	// A child that ends is counted in its parent's family once waited for.
	if err := exec.Command("sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done").Run(); err != nil {
		t.Skipf("no shell to run a child: %v", err)
	}
	if fam := Family(os.Getpid()); fam < self {
		t.Fatalf("Family(self) = %v; less than its own %v", fam, self)
	}
	if _, _, ok := Of(1 << 30); ok {
		t.Fatal("Of a pid that cannot exist answered")
	}
	if MachineBusy() <= 0 {
		t.Fatal("MachineBusy read nothing")
	}
}

var sink int // keeps the busy loop from being optimized away
