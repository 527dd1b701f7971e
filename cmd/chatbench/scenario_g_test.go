package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"1", 1}, {"500", 500}, {"1k", 1000}, {"100K", 100_000}, {"1M", 1_000_000}, {" 10 ", 10}, {"250k", 250_000},
	} {
		if got, err := parseCount(tc.in); err != nil || got != tc.want {
			t.Errorf("parseCount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0", "-5", "+5", "k", "1.5k", "1m", "10x", "2000M"} {
		if got, err := parseCount(in); err == nil {
			t.Errorf("parseCount(%q) = %d; want an error", in, got)
		}
	}
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("1M, 1k,100k,1000,")
	if err != nil || !slices.Equal(got, []int{1000, 100_000, 1_000_000}) {
		t.Errorf("parseCounts = %v, %v; want [1000 100000 1000000]", got, err)
	}
	for _, in := range []string{"", " , ", "1k,x"} {
		if _, err := parseCounts(in); err == nil {
			t.Errorf("parseCounts(%q): no error", in)
		}
	}
	for _, n := range []int{1, 999, 1000, 1500, 100_000, 1_000_000, 2_500_000} {
		if back, err := parseCount(formatCount(n)); err != nil || back != n {
			t.Errorf("formatCount(%d) = %q reads back as %d, %v", n, formatCount(n), back, err)
		}
	}
	if s := formatCounts([]int{10, 1000, 1_000_000}); s != "10,1k,1M" {
		t.Errorf("formatCounts = %q", s)
	}
}

func TestGrowthCells(t *testing.T) {
	g := growthGrid{events: []int{1000, 100_000, 1_000_000}, rooms: []int{10, 1000, 100_000}}
	cells := g.cells(200)
	if len(cells) != 9 {
		t.Fatalf("%d cells; want 9", len(cells))
	}
	var skipped []string
	for i, c := range cells {
		if c.Events != g.events[i/3] || c.Rooms != g.rooms[i%3] {
			t.Errorf("cell %d is %d/%d: not in order", i, c.Events, c.Rooms)
		}
		if c.Skipped != "" {
			skipped = append(skipped, formatCount(c.Events)+"/"+formatCount(c.Rooms))
		}
	}
	// 200 users take 400 events; a cell needs a message beyond its rooms.
	if want := []string{"1k/1k", "1k/100k", "100k/100k"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %v; want %v", skipped, want)
	}
	edge := growthGrid{events: []int{1410, 1411}, rooms: []int{1010}}.cells(200)
	if edge[0].Skipped == "" || edge[1].Skipped != "" || !strings.Contains(edge[0].Skipped, "1410 events") {
		t.Errorf("edge cells: %+v", edge)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 10: "10", 999: "999", 1000: "1,000", 100_000: "100,000", 1_000_000: "1,000,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestGrowthMarkdown(t *testing.T) {
	g := &growthResult{Users: 200, Cells: []growthCell{
		{Events: 1000, Rooms: 1000, Skipped: "no room"},
		{Events: 1000, Rooms: 10, Insert: summary{P50Ms: 1}, Send: summary{P50Ms: 10, P99Ms: 40, Rate: 1000, CPU: &cpuUse{Postgres: 0.5}},
			List: summary{P50Ms: 5, Rate: 2000, CPU: &cpuUse{Postgres: 0.5}}},
		{Events: 100_000, Rooms: 10, Insert: summary{P50Ms: 2}, Send: summary{P50Ms: 30, P99Ms: 60}, List: summary{P50Ms: 5}},
	}}
	lines := growthMarkdown(g)
	want := []string{
		"| 1,000 | 1,000 | | n/a | n/a | n/a | | | | |",
		// 1,000 events: 410 make the users and rooms; 562 messages and 28 receipts.
		"| 1,000 | 10 | 56 | 10.0ms (1.00) | 40.0ms (1.00) | 5.00ms (1.00) | 1.00ms | 10.00 | 5.00 | 0.50ms, 0.25ms |",
		"| 100,000 | 10 | 9,485 | 30.0ms (3.00) | 60.0ms (1.50) | 5.00ms (1.00) | 2.00ms | 15.00 | 2.50 | n/a, n/a |",
	}
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("no line %q in\n%s", w, strings.Join(lines, "\n"))
		}
	}
}
