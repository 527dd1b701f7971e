package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose: summarize sorts
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	s := summarize(hundred, 10*time.Second)
	if s.Count != 100 || s.P50Ms != 50 || s.P99Ms != 99 || s.MaxMs != 100 || s.MeanMs != 50.5 || s.Rate != 10 {
		t.Errorf("summarize(1..100ms over 10s) = %+v", s)
	}
	for _, tc := range []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{7}, 50, 7},
		{[]time.Duration{7}, 99, 7},
		{[]time.Duration{1, 2}, 50, 1},
		{[]time.Duration{1, 2}, 51, 2},
		{[]time.Duration{1, 2, 3, 4}, 100, 4},
		{[]time.Duration{1, 2, 3, 4}, 0, 1},
		{hundred[:0], 99, 0},
	} {
		if got := percentile(tc.samples, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.samples, tc.p, got, tc.want)
		}
	}
	// p99 of 1000 samples is the 990th.
	var thousand []time.Duration
	for i := 1; i <= 1000; i++ {
		thousand = append(thousand, time.Duration(i))
	}
	if got := percentile(thousand, 99); got != 990 {
		t.Errorf("p99 of 1..1000 = %v, want 990", got)
	}
}

func TestSummarizeEmpty(t *testing.T) {
	if s := summarize(nil, time.Second); s != (summary{}) {
		t.Errorf("summarize(nil) = %+v, want zero", s)
	}
}

func TestErrorLog(t *testing.T) {
	var l errorLog
	l.add("a", errors.New("POST /send-message/: 500"))
	l.add("a", errors.New("POST /send-message/: 500"))
	l.add("b", errors.New("timeout"))
	if l.total("a") != 2 || l.total("b") != 1 || l.total("") != 3 {
		t.Errorf("totals: a %d, b %d, all %d", l.total("a"), l.total("b"), l.total(""))
	}
	want := []string{"a: POST /send-message/: 500 (x2)", "b: timeout (x1)"}
	got := l.lines()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("lines = %q, want %q", got, want)
	}
	for i := range 2 * maxDistinctErrors {
		l.add("c", errors.New(string(rune('A'+i))))
	}
	if n := len(l.lines()); n != maxDistinctErrors+1 {
		t.Errorf("%d distinct lines, want %d (the cap plus \"other errors\")", n, maxDistinctErrors+1)
	}
}

func TestParseFanoutText(t *testing.T) {
	seq, sent, ok := parseFanoutText("cb 42 123456789")
	if !ok || seq != 42 || sent != 123456789 {
		t.Errorf("parseFanoutText = %d, %d, %v", seq, sent, ok)
	}
	for _, s := range []string{"", "cb", "cb 1", "cb x 2", "hello 1 2"} {
		if _, _, ok := parseFanoutText(s); ok {
			t.Errorf("parseFanoutText(%q) ok", s)
		}
	}
}

func TestParseFlagsChatdArgs(t *testing.T) {
	o, err := parseFlags([]string{"-scenarios", "b,a", "-chatd-args", " -debug-addr  127.0.0.1:6060 "})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(o.chatdArgs, "|"), "-debug-addr|127.0.0.1:6060"; got != want {
		t.Errorf("chatdArgs = %q; want %q", got, want)
	}
	if got := strings.Join(o.scenarios, ","); got != "a,b" {
		t.Errorf("scenarios = %q; want a,b", got)
	}
	if _, err := parseFlags([]string{"-scenarios", "z"}); err == nil {
		t.Error("unknown scenario accepted")
	}
}
