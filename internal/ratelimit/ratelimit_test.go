package ratelimit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/evchat/evchat/internal/ratelimit"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Unix(1_700_000_000, 0)} }
func mustParse(t *testing.T, s string) ratelimit.Limit {
	t.Helper()
	l, err := ratelimit.Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return l
}

func TestBurstThenRate(t *testing.T) {
	c := newClock()
	l := ratelimit.New[int64](mustParse(t, "2/s,3"), c.now)
	for i := range 3 {
		if ok, _ := l.Allow(1); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow(1)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("Allow after the burst = %v, %v; want false, 500ms", ok, wait)
	}
	if ok, _ := l.Allow(2); !ok {
		t.Fatal("another key was refused")
	}
	c.advance(wait)
	if ok, _ := l.Allow(1); !ok {
		t.Fatal("refused after the wait it was told")
	}
	if ok, _ := l.Allow(1); ok {
		t.Fatal("a second token appeared from half a second at 2/s")
	}
}

func TestOffAllowsEverything(t *testing.T) {
	l := ratelimit.New[string](ratelimit.Off, nil)
	for range 10000 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("Off refused")
		}
	}
	var nilLimiter *ratelimit.Limiter[string]
	if ok, _ := nilLimiter.Allow("k"); !ok {
		t.Fatal("a nil limiter refused")
	}
}

func TestFullBucketsAreDropped(t *testing.T) {
	c := newClock()
	l := ratelimit.New[int](mustParse(t, "1/s,1"), c.now)
	for i := range 5000 {
		l.Allow(i)
	}
	c.advance(time.Second) // every bucket is full again
	for i := range 9000 {
		l.Allow(-1 - i)
	}
	if n := l.Len(); n > 9000 {
		t.Fatalf("%d buckets held; want the refilled ones dropped", n)
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"20/s,40", "20/s,40"}, {"10/h", "10/h,10"}, {"30/m,5", "30/m,5"}, {"off", "off"}, {"0.5/s,1", "30/m,1"},
	} {
		if got := mustParse(t, tt.in).String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q; want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "20", "20/d", "-1/s", "0/s", "x/s", "1/s,0", "1/s,x", "NaN/s", "Inf/s"} {
		if _, err := ratelimit.Parse(bad); err == nil {
			t.Errorf("Parse(%q) = nil error; want one", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"20/s,40", "10/h", "off", "1/m,1", "0.001/s", "1e308/s", "1000000000/s,1000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ratelimit.Parse(s)
		if err != nil {
			return
		}
		// An accepted limit round-trips through its text form.
		back, err := ratelimit.Parse(l.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %v, whose text %q does not parse: %v", s, l, l.String(), err)
		}
		if back.Burst != l.Burst || back.Unlimited() != l.Unlimited() || !near(back.Rate, l.Rate) {
			t.Fatalf("Parse(%q) = %+v; round trip %q gives %+v", s, l, l.String(), back)
		}
	})
}

func near(a, b float64) bool {
	if a == b {
		return true
	}
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-9*max(a, b)
}

func ExampleParse() {
	l, _ := ratelimit.Parse("20/s,40")
	fmt.Println(l.Rate, l.Burst)
	// Output: 20 40
}
