package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// results is everything a run measured; it is also the -json document.
type results struct {
	Settings settings              `json:"settings"`
	Baseline *baselineResult       `json:"baseline,omitempty"`
	A        *sendLoadResult       `json:"a,omitempty"`
	B        *sendLoadResult       `json:"b,omitempty"`
	C        *bigRoomResult        `json:"c,omitempty"`
	D        *fanoutResult         `json:"d,omitempty"`
	E        *idleResult           `json:"e,omitempty"`
	G        *growthResult         `json:"g,omitempty"`
	R        *readAfterWriteResult `json:"r,omitempty"`
	Goals    []goal                `json:"goals"`
	// Failed maps a scenario that could not finish to why.
	Failed map[string]string `json:"failed,omitempty"`
	// Errors are failed requests, by kind, with counts.
	Errors []string `json:"errors,omitempty"`
	// ServerLog summarises what chatd logged (at warn level and above).
	ServerLog []string `json:"server_log,omitempty"`
}

type settings struct {
	Scenarios   string    `json:"scenarios"`
	Duration    string    `json:"duration"`
	Warmup      string    `json:"warmup"`
	Rate        int       `json:"rate"`
	Sockets     int       `json:"sockets"`
	IdleSockets int       `json:"idle_sockets"`
	Prefill     int       `json:"prefill"`
	CPUs        int       `json:"cpus"`
	GoVersion   string    `json:"go_version"`
	Started     time.Time `json:"started"`
	Seconds     float64   `json:"seconds"`
	// GrowthEvents and GrowthRooms are scenario g's grid.
	GrowthEvents string `json:"growth_events"`
	GrowthRooms  string `json:"growth_rooms"`
}

// goal is one target and whether the run met it.
type goal struct {
	Scenario string `json:"scenario"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Status   string `json:"status"` // PASS, MISS, SKIP or n/a
}

func status(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// Goals.
const (
	goalAOfBaseline = 0.35
	goalAP99Ms      = 15.0
	goalBOfA        = 0.60
	goalCRatio      = 1.5
	goalCAsOfRatio  = 3.0
	goalDP99Ms      = 50.0
	goalDRateShare  = 0.98 // of the target: the rate counts as offered
	goalEKiB        = 10.0
)

// evaluate checks each goal against what was measured.
func evaluate(r *results) []goal {
	var out []goal
	var baseRate float64
	if r.Baseline != nil {
		baseRate = r.Baseline.Inserts.Rate
	}
	if a := r.A; a != nil {
		q := ratio(a.Sends.Rate, baseRate)
		g := goal{Scenario: "a", Goal: fmt.Sprintf("a/baseline >= %.2f and p99 < %.0fms", goalAOfBaseline, goalAP99Ms),
			Measured: fmt.Sprintf("a/baseline = %s, p99 = %s", fmtRatio(q), fmtMs(a.Sends.P99Ms))}
		g.Status = status(q >= goalAOfBaseline && a.Sends.P99Ms < goalAP99Ms)
		if r.Baseline == nil {
			g.Status = "n/a"
		}
		out = append(out, g)
	}
	if b := r.B; b != nil {
		g := goal{Scenario: "b", Goal: fmt.Sprintf("b/a >= %.2f", goalBOfA)}
		if r.A == nil {
			g.Measured, g.Status = "b/a: a did not run", "n/a"
		} else {
			q := ratio(b.Sends.Rate, r.A.Sends.Rate)
			g.Measured, g.Status = "b/a = "+fmtRatio(q), status(q >= goalBOfA)
		}
		out = append(out, g)
	}
	if c := r.C; c != nil {
		for _, x := range []struct {
			what       string
			empty, big summary
		}{{"send", c.SendEmpty, c.SendBig}, {"list", c.ListEmpty, c.ListBig}} {
			q := ratio(x.big.P50Ms, x.empty.P50Ms)
			out = append(out, goal{Scenario: "c " + x.what, Goal: fmt.Sprintf("%s big/empty p50 <= %.1f", x.what, goalCRatio),
				Measured: "big/empty p50 = " + fmtRatio(q), Status: status(q <= goalCRatio)})
		}
		if c.AsOf != "" {
			q := ratio(c.ListAsOf.P50Ms, c.ListLive.P50Ms)
			out = append(out, goal{Scenario: "c as_of", Goal: fmt.Sprintf("list as_of/now p50 <= %.1f", goalCAsOfRatio),
				Measured: "as_of/now p50 = " + fmtRatio(q), Status: status(q <= goalCAsOfRatio)})
		}
	}
	if d := r.D; d != nil {
		lost := d.Missing + d.Duplicates + d.OutOfOrder + d.WrongRoom
		ok := d.Sends.Rate >= goalDRateShare*float64(d.TargetRate) && d.Latency.P99Ms < goalDP99Ms && lost == 0
		out = append(out, goal{Scenario: "d",
			Goal: fmt.Sprintf("%d sends/s, p99 < %.0fms, nothing lost", d.TargetRate, goalDP99Ms),
			Measured: fmt.Sprintf("%.0f sends/s, p99 = %s, %d missing, %d duplicate, %d out of order",
				d.Sends.Rate, fmtMs(d.Latency.P99Ms), d.Missing, d.Duplicates, d.OutOfOrder),
			Status: status(ok)})
	}
	if e := r.E; e != nil {
		g := goal{Scenario: "e", Goal: fmt.Sprintf("< %.0f KiB per idle socket", goalEKiB)}
		if e.Skipped != "" {
			g.Measured, g.Status = "skipped: "+e.Skipped, "SKIP"
		} else {
			g.Measured = fmt.Sprintf("%.1f KiB per idle socket", e.KiBPerSocket)
			g.Status = status(e.KiBPerSocket < goalEKiB && len(e.UnexpectedClosures) == 0)
		}
		out = append(out, g)
	}
	if r.R != nil {
		out = append(out, evaluateR(r.R))
	}
	return out
}

// row is a line of the results table.
type row struct {
	scenario, n, errs, rate, p50, p99, ratio, goal, result string
}

func loadRow(name string, s summary, unit string) row {
	return row{scenario: name, n: fmt.Sprint(s.Count), errs: fmt.Sprint(s.Errors),
		rate: fmt.Sprintf("%.0f %s", s.Rate, unit), p50: fmtMs(s.P50Ms), p99: fmtMs(s.P99Ms)}
}

func goalOf(goals []goal, scenario string) (goal, bool) {
	for _, g := range goals {
		if g.Scenario == scenario {
			return g, true
		}
	}
	return goal{}, false
}

func (r row) with(g goal, ok bool) row {
	if ok {
		r.goal, r.result = g.Goal, g.Status
	}
	return r
}

// rows lays the results out one scenario per line (c takes four).
func rows(r *results) []row {
	var out []row
	if b := r.Baseline; b != nil {
		x := loadRow(fmt.Sprintf("baseline: INSERT tx, %d conns", b.Connections), b.Inserts, "tx/s")
		x.ratio, x.goal = "-", "-"
		out = append(out, x)
	}
	if a := r.A; a != nil {
		x := loadRow(fmt.Sprintf("a: %d clients, %d rooms", a.Clients, a.Rooms), a.Sends, "sends/s")
		if r.Baseline != nil {
			x.ratio = "a/baseline = " + fmtRatio(ratio(a.Sends.Rate, r.Baseline.Inserts.Rate))
		}
		out = append(out, x.with(goalOf(r.Goals, "a")))
	}
	if b := r.B; b != nil {
		x := loadRow(fmt.Sprintf("b: %d clients, 1 hot room", b.Clients), b.Sends, "sends/s")
		if r.A != nil {
			x.ratio = "b/a = " + fmtRatio(ratio(b.Sends.Rate, r.A.Sends.Rate))
		}
		out = append(out, x.with(goalOf(r.Goals, "b")))
	}
	if c := r.C; c != nil {
		bigName := fmt.Sprintf("%dk room", c.PrefillMessages/1000)
		for _, x := range []struct {
			what, unit string
			empty, big summary
		}{{"send", "sends/s", c.SendEmpty, c.SendBig}, {"list", "lists/s", c.ListEmpty, c.ListBig}} {
			out = append(out, loadRow(fmt.Sprintf("c: %s, empty room", x.what), x.empty, x.unit))
			y := loadRow(fmt.Sprintf("c: %s, %s", x.what, bigName), x.big, x.unit)
			y.ratio = fmt.Sprintf("big/empty p50 = %s, p99 = %s",
				fmtRatio(ratio(x.big.P50Ms, x.empty.P50Ms)), fmtRatio(ratio(x.big.P99Ms, x.empty.P99Ms)))
			out = append(out, y.with(goalOf(r.Goals, "c "+x.what)))
		}
		if c.AsOf != "" {
			out = append(out, loadRow(fmt.Sprintf("c: list %s now", bigName), c.ListLive, "lists/s"))
			y := loadRow(fmt.Sprintf("c: list %s as_of halfway", bigName), c.ListAsOf, "lists/s")
			y.ratio = fmt.Sprintf("as_of/now p50 = %s, p99 = %s",
				fmtRatio(ratio(c.ListAsOf.P50Ms, c.ListLive.P50Ms)), fmtRatio(ratio(c.ListAsOf.P99Ms, c.ListLive.P99Ms)))
			out = append(out, y.with(goalOf(r.Goals, "c as_of")))
		}
	}
	if d := r.D; d != nil {
		x := row{scenario: fmt.Sprintf("d: fan-out, %d sockets", d.Sockets), n: fmt.Sprint(d.Latency.Count),
			errs: fmt.Sprint(d.Sends.Errors), rate: fmt.Sprintf("%.0f frames/s", d.DeliveredRate),
			p50: fmtMs(d.Latency.P50Ms), p99: fmtMs(d.Latency.P99Ms),
			ratio: fmt.Sprintf("%.0f sends/s; delivered %d/%d; max %s", d.Sends.Rate, d.Delivered, d.Expected, fmtMs(d.Latency.MaxMs))}
		out = append(out, x.with(goalOf(r.Goals, "d")))
	}
	if e := r.E; e != nil {
		x := row{scenario: fmt.Sprintf("e: %d idle sockets", e.Sockets), n: "-", errs: "-", rate: "-", p50: "-", p99: "-"}
		if e.Skipped != "" {
			x.ratio = "skipped (see below)"
		} else {
			x.n = fmt.Sprint(e.Sockets)
			x.ratio = fmt.Sprintf("RSS %.1f -> %.1f MiB = %.1f KiB/socket",
				float64(e.RSSBeforeKiB)/1024, float64(e.RSSAfterKiB)/1024, e.KiBPerSocket)
			if e.After != nil {
				x.ratio += fmt.Sprintf(" (heap %.1f, stacks %.1f)", e.HeapKiBPerSocket, e.StackKiBPerSocket)
			}
		}
		out = append(out, x.with(goalOf(r.Goals, "e")))
	}
	if r.G != nil {
		out = append(out, rowsG(r.G)...)
	}
	if r.R != nil {
		out = append(out, rowsR(r.R, r.Goals)...)
	}
	for _, s := range slices.Sorted(maps.Keys(r.Failed)) {
		out = append(out, row{scenario: s + ": FAILED", n: "-", errs: "-", rate: "-", p50: "-", p99: "-",
			ratio: "see errors below", result: "ERROR"})
	}
	return out
}

// printReport writes the table, then the details and problems.
func printReport(w io.Writer, r *results) {
	s := r.Settings
	fmt.Fprintf(w, "\nchatbench: %s per scenario after %s warm-up; %d CPUs; %s; durable PostgreSQL; chatd as a child process\n\n",
		s.Duration, s.Warmup, s.CPUs, s.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tN\tERR\tRATE\tP50\tP99\tRATIO\tGOAL\tRESULT")
	for _, x := range rows(r) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.scenario, x.n, x.errs, x.rate, x.p50, x.p99,
			dash(x.ratio), dash(x.goal), dash(x.result))
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nGoals:")
	for _, g := range r.Goals {
		fmt.Fprintf(w, "  %-4s %-7s %-45s measured: %s\n", g.Status, g.Scenario, g.Goal, g.Measured)
	}
	if len(r.Goals) == 0 {
		fmt.Fprintln(w, "  (none evaluated)")
	}

	if lines := details(r); len(lines) > 0 {
		fmt.Fprintln(w, "\nDetails:")
		for _, line := range lines {
			fmt.Fprintln(w, "  "+line)
		}
	}
	if len(r.Failed) > 0 || len(r.Errors) > 0 {
		fmt.Fprintln(w, "\nErrors:")
		for _, k := range slices.Sorted(maps.Keys(r.Failed)) {
			fmt.Fprintf(w, "  %s did not finish: %s\n", k, r.Failed[k])
		}
		for _, e := range r.Errors {
			fmt.Fprintln(w, "  "+e)
		}
	}
	if len(r.ServerLog) > 0 {
		fmt.Fprintln(w, "\nchatd logged (warn and above):")
		for _, l := range r.ServerLog {
			fmt.Fprintln(w, "  "+l)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// details are the facts behind the table that a reader needs to trust it.
func details(r *results) []string {
	var out []string
	if b := r.Baseline; b != nil {
		var set []string
		for _, k := range durabilitySettings {
			set = append(set, k+"="+b.Settings[k])
		}
		out = append(out, fmt.Sprintf("baseline: autocommit single-row INSERT (id bigserial primary key, room, sender, text, created_at) on %d connections; mean %s, max %s; %s",
			b.Connections, fmtMs(b.Inserts.MeanMs), fmtMs(b.Inserts.MaxMs), strings.Join(set, " ")))
	}
	for _, x := range []struct {
		name string
		res  *sendLoadResult
	}{{"a", r.A}, {"b", r.B}} {
		if x.res != nil {
			out = append(out, fmt.Sprintf("%s: POST /send-message/, %d clients (one user each), %d room(s) of %d members; mean %s, max %s",
				x.name, x.res.Clients, x.res.Rooms, x.res.RoomMembers, fmtMs(x.res.Sends.MeanMs), fmtMs(x.res.Sends.MaxMs)))
		}
	}
	if c := r.C; c != nil {
		out = append(out,
			fmt.Sprintf("c: pre-filled %d messages in %.1fs (%.0f sends/s, %d clients); measured with %d clients alternating the two rooms",
				c.PrefillMessages, c.PrefillSeconds, float64(c.PrefillMessages)/max(c.PrefillSeconds, 1e-9), prefillWorkers, c.Clients),
			fmt.Sprintf("c: the \"empty\" room is empty when the send phase starts and holds a full page when the list phase starts; list pages returned %d (empty room) and %d (big room) messages",
				c.PageEmpty, c.PageBig),
			fmt.Sprintf("c: p99 big/empty: send %s (%s vs %s), list %s (%s vs %s)",
				fmtRatio(ratio(c.SendBig.P99Ms, c.SendEmpty.P99Ms)), fmtMs(c.SendBig.P99Ms), fmtMs(c.SendEmpty.P99Ms),
				fmtRatio(ratio(c.ListBig.P99Ms, c.ListEmpty.P99Ms)), fmtMs(c.ListBig.P99Ms), fmtMs(c.ListEmpty.P99Ms)),
			fmt.Sprintf("c: first send after a chatd restart (room state not cached, one sample each): empty room %s, big room %s",
				fmtMs(c.ColdSendEmptyMs), fmtMs(c.ColdSendBigMs)))
		if c.AsOf != "" {
			out = append(out, fmt.Sprintf("c: as_of = %s (when half the pre-fill was acknowledged); its page held %d messages; the first as_of list, which reads the room's log up to the cut and saves its history index, took %s",
				c.AsOf, c.PageAsOf, fmtMs(c.ColdAsOfMs)))
		}
	}
	if d := r.D; d != nil {
		out = append(out,
			fmt.Sprintf("d: %d sockets = %d rooms x %d members (%d users, one socket per member and room); target %d sends/s over REST, paced, round-robin over rooms, %d concurrent senders",
				d.Sockets, d.Rooms, d.RoomMembers, d.Users, d.TargetRate, fanoutSenders),
			fmt.Sprintf("d: achieved %.0f sends/s (max schedule lag %s); REST send p50 %s, p99 %s, max %s",
				d.Sends.Rate, fmtMs(d.MaxScheduleLagMs), fmtMs(d.Sends.P50Ms), fmtMs(d.Sends.P99Ms), fmtMs(d.Sends.MaxMs)),
			fmt.Sprintf("d: send-to-receive latency %s", d.LatencyHistogram),
			fmt.Sprintf("d: deliveries expected %d, delivered %d, missing %d, duplicate %d, out of order %d, wrong room %d, of failed sends %d; error frames %d; drained in %.1fs",
				d.Expected, d.Delivered, d.Missing, d.Duplicates, d.OutOfOrder, d.WrongRoom, d.FailedSendFrames, d.ErrorFrames, d.DrainSeconds),
			"d: frames received over the whole run, by type: "+frameCounts(d.Frames),
			"d: sockets closed by the server during the run: "+closures(d.UnexpectedClosures))
	}
	out = append(out, cpuLines(r)...)
	if r.G != nil {
		out = append(out, detailsG(r.G)...)
	}
	if e := r.E; e != nil {
		if e.Skipped != "" {
			out = append(out, "e: skipped: "+e.Skipped)
		} else {
			out = append(out,
				fmt.Sprintf("e: %d sockets over %d rooms (%d users, several sockets each) opened in %.1fs; chatd restarted first; VmRSS read after a warm-up of 100 sockets, and again %.0fs after opening",
					e.Sockets, e.Rooms, e.Users, e.OpenSeconds, e.SettleSeconds),
				"e: sockets closed by the server while idle: "+closures(e.UnexpectedClosures))
			if e.Before != nil && e.After != nil {
				out = append(out, fmt.Sprintf("e: each reading after two garbage collections; per socket: %.1f KiB RSS = %.1f live heap + %.1f goroutine stacks + %.1f the rest (heap free but resident, runtime); goroutines %d -> %d",
					e.KiBPerSocket, e.HeapKiBPerSocket, e.StackKiBPerSocket, e.KiBPerSocket-e.HeapKiBPerSocket-e.StackKiBPerSocket,
					e.Before.Goroutines, e.After.Goroutines))
			} else {
				out = append(out, "e: chatd's debug listener did not answer: readings without a garbage collection first")
			}
		}
	}
	return out
}

// noisyOther is the CPU other processes may use in a window before the
// window is flagged as noisy.
const noisyOther = 0.25

// cpuLines say how busy each process was in each measured window.
func cpuLines(r *results) []string {
	var out []string
	add := func(name string, u *cpuUse, sendRate ...float64) {
		if u != nil {
			line := fmt.Sprintf("cpu %-10s chatd %.2f, postgres %.2f, chatbench %.2f, other processes %.2f cores (of %d)",
				name+":", u.Chatd, u.Postgres, u.Chatbench, u.Other, r.Settings.CPUs)
			if len(sendRate) > 0 && sendRate[0] > 0 {
				// CPU time per send: steadier from run to run than the
				// latencies, which the machine's other work moves.
				per := func(cores float64) float64 { return cores / sendRate[0] * 1000 }
				line += fmt.Sprintf("; per send chatd %.3f + postgres %.3f + chatbench %.3f = %.3f ms",
					per(u.Chatd), per(u.Postgres), per(u.Chatbench), per(u.Chatd+u.Postgres+u.Chatbench))
			}
			if u.Other >= noisyOther {
				line += " <- the machine was busy with other work: noisy"
			}
			out = append(out, line)
		}
	}
	if r.Baseline != nil {
		add("baseline", r.Baseline.Inserts.CPU)
	}
	if r.A != nil {
		add("a", r.A.Sends.CPU, r.A.Sends.Rate)
	}
	if r.B != nil {
		add("b", r.B.Sends.CPU, r.B.Sends.Rate)
	}
	if r.C != nil {
		add("c send", r.C.SendBig.CPU)
		add("c list", r.C.ListBig.CPU)
		if r.C.AsOf != "" {
			add("c as_of", r.C.ListAsOf.CPU)
		}
	}
	if r.D != nil {
		add("d", r.D.CPU, r.D.Sends.Rate)
	}
	if r.R != nil {
		add("r", r.R.ListAfterSend.CPU)
	}
	if r.G != nil {
		for _, c := range r.G.Cells {
			if c.Skipped == "" {
				cell := "g " + formatCount(c.Events) + "/" + formatCount(c.Rooms)
				add(cell+" send", c.Send.CPU)
				add(cell+" list", c.List.CPU)
			}
		}
	}
	return out
}

func closures(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d x %s", m[k], k))
	}
	return strings.Join(parts, "; ")
}

// writeJSON writes the results to path.
func writeJSON(path string, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// frameCounts lists frame counts by type, the most frequent first.
func frameCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	types := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, m[t])
	}
	return strings.Join(parts, ", ")
}
