package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/synthlog"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/postgres"
	"github.com/evchat/evchat/postgres/notifier"
	"github.com/evchat/evchat/projections"
)

// Scenario g: how the cost of a send and of a list grows with the length of
// the log and the number of rooms. Filling a log of a million events over
// HTTP would take far longer than the measurement, so each cell writes a
// synthetic log (package synthlog) straight into a fresh database's event
// store, rebuilds the read model from it as `chatctl projections rebuild`
// does, and starts chatd on it.

// growthGrid is the cells g measures: every log length with every number
// of rooms.
type growthGrid struct {
	events, rooms []int
}

// growthResult is scenario g.
type growthResult struct {
	// Users in every cell's log; the rooms' 3 to 6 members are drawn from
	// them.
	Users   int          `json:"users"`
	Clients int          `json:"clients"`
	Cells   []growthCell `json:"cells"`
}

// growthCell is one log length and number of rooms.
type growthCell struct {
	Events int `json:"events"`
	Rooms  int `json:"rooms"`
	// Skipped says why the cell cannot exist; nothing else is set then.
	Skipped        string  `json:"skipped,omitempty"`
	WriteSeconds   float64 `json:"write_seconds"` // generating and copying the log
	RebuildSeconds float64 `json:"rebuild_seconds"`
	// DatabaseMB is the database's size once prepared: the log, the read
	// model and their indexes.
	DatabaseMB float64 `json:"database_mb"`
	// SendBuffers and ListBuffers are the database's block reads during
	// each load, warm-up included, as PostgreSQL's statistics count them
	// (they trail by up to a second).
	SendBuffers bufferUse `json:"send_buffers"`
	ListBuffers bufferUse `json:"list_buffers"`
	// Primed rooms got one send each before the loads, in PrimeSeconds.
	Primed       int     `json:"primed"`
	PrimeSeconds float64 `json:"prime_seconds"`
	// Insert is the baseline's INSERT load, run in the cell just before its
	// sends: what the machine allowed at that moment.
	Insert summary `json:"insert"`
	Send   summary `json:"send"`
	List   summary `json:"list"`
}

const (
	growthUsers    = 200 // as in the rebuild benchmark's log
	growthPassword = "growth-bench-password"
	// stateCacheRooms is how many rooms' state chatd keeps in memory.
	stateCacheRooms = commands.DefaultCacheSize
)

// parseCount reads a positive count: digits with an optional suffix k
// (thousand) or M (million).
func parseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1000, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not a positive count (like 500, 100k or 1M)", s)
	}
	if n > 1_000_000_000/mult {
		return 0, fmt.Errorf("%d%s is too large", n, map[int]string{1: "", 1000: "k", 1_000_000: "M"}[mult])
	}
	return n * mult, nil
}

// parseCounts reads a comma-separated list of counts, ascending without
// repeats.
func parseCounts(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := parseCount(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no counts given")
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// formatCount writes a count the way parseCount reads it, as short as it
// is exact.
func formatCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func formatCounts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = formatCount(n)
	}
	return strings.Join(parts, ",")
}

// cells lists the grid's cells, log length first, both ascending. A cell
// whose users and rooms take the whole log or more (each user takes two
// events, each room one, before any message) cannot exist: it is skipped
// with the reason.
func (g growthGrid) cells(users int) []growthCell {
	var out []growthCell
	for _, n := range g.events {
		for _, r := range g.rooms {
			c := growthCell{Events: n, Rooms: r}
			if made := (synthlog.Config{Events: n, Users: users, Rooms: r}).CreationEvents(); made >= n {
				c.Skipped = fmt.Sprintf("creating %d users and %d rooms takes %d events, leaving no room in %d for a message", users, r, made, n)
			}
			out = append(out, c)
		}
	}
	return out
}

// runG measures each cell of the grid in turn, then puts chatd back on the
// run's own database.
func runG(ctx context.Context, e *env) (*growthResult, error) {
	res := &growthResult{Users: growthUsers, Clients: loadClients, Cells: e.opts.growth.cells(growthUsers)}
	base, err := openBaseline(ctx, e)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	phase := max(e.opts.duration/3, time.Second)
	for i := range res.Cells {
		c := &res.Cells[i]
		if c.Skipped != "" {
			e.logf("g: %s events, %s rooms: n/a (%s)", formatCount(c.Events), formatCount(c.Rooms), c.Skipped)
			continue
		}
		if err = growthCellRun(ctx, e, base, c, phase); err != nil {
			err = fmt.Errorf("g: %s events, %s rooms: %w", formatCount(c.Events), formatCount(c.Rooms), err)
			break
		}
	}
	if ctx.Err() == nil {
		if serr := e.switchChatd(ctx, e.dbURL, e.dataDir()); err == nil {
			err = serr
		}
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// growthCellRun prepares one cell's database, runs chatd on it, measures,
// and drops the database.
func growthCellRun(ctx context.Context, e *env, base *pgxpool.Pool, c *growthCell, phase time.Duration) (err error) {
	db := fmt.Sprintf("growth_%d_%d", c.Events, c.Rooms)
	dataDir := filepath.Join(e.tmp, db+"-data")
	if err := e.stopChatd(); err != nil {
		return err
	}
	if err := adminExec(ctx, e, "CREATE DATABASE "+db); err != nil {
		return err
	}
	defer func() {
		serr := e.stopChatd()
		if derr := adminExec(context.WithoutCancel(ctx), e, "DROP DATABASE "+db+" WITH (FORCE)"); serr == nil {
			serr = derr
		}
		if rerr := os.RemoveAll(dataDir); serr == nil {
			serr = rerr
		}
		if err == nil {
			err = serr
		}
	}()
	log := synthlog.Config{Events: c.Events, Users: growthUsers, Rooms: c.Rooms}
	if err := prepareGrowthDB(ctx, e, e.pg.URL(db), log, c); err != nil {
		return err
	}
	if err := e.switchChatd(ctx, e.pg.URL(db), dataDir); err != nil {
		return err
	}

	// Log in every user that belongs to a room: a load acts as a random
	// member of a random room.
	users := make([]*user, growthUsers+1) // by id
	var ids []int64
	for r := int64(1); r <= int64(c.Rooms) && len(ids) < growthUsers; r++ {
		for _, u := range log.Members(r) {
			if users[u] == nil {
				users[u] = &user{id: u, name: synthlog.Username(u)}
				ids = append(ids, u)
			}
		}
	}
	e.logf("g: logging in %d users", len(ids))
	if err := parallel(ctx, len(ids), 6, func(ctx context.Context, i int) error {
		u := users[ids[i]]
		var err error
		u.token, err = e.api.login(ctx, u.name, growthPassword)
		return err
	}); err != nil {
		return err
	}
	pick := func(rng *rand.Rand) (int64, *user) {
		r := rng.Int64N(int64(c.Rooms)) + 1
		m := log.Members(r)
		return r, users[m[rng.IntN(len(m))]]
	}
	// A server that has been running holds the rooms it serves in its state
	// cache, and a snapshot of each room at least every 1,000 events; a log
	// copied in has neither. One send to each room, as many as the cache
	// holds, brings chatd there, so that the loads measure sends and not a
	// restart's cold loads (scenario c times those).
	c.Primed = min(c.Rooms, stateCacheRooms)
	e.logf("g: one send to each of %d rooms, to load their state as a running server has it", c.Primed)
	t0 := time.Now()
	if err := parallel(ctx, c.Primed, loadClients, func(ctx context.Context, i int) error {
		r := int64(i + 1)
		return e.api.send(ctx, users[log.Members(r)[0]], r, "chatbench g prime")
	}); err != nil {
		return fmt.Errorf("prime: %w", err)
	}
	c.PrimeSeconds = time.Since(t0).Seconds()
	if err := e.checkpoint(ctx); err != nil {
		return err
	}

	name := fmt.Sprintf("g %s/%s", formatCount(c.Events), formatCount(c.Rooms))
	e.logf("g: %s events, %s rooms: INSERT baseline, then %d clients sending to random rooms, then listing random rooms, %s each (+%s warm-up)",
		formatCount(c.Events), formatCount(c.Rooms), loadClients, phase, e.opts.warmup)
	if c.Insert, err = insertLoad(ctx, e, base, name+" insert", e.opts.warmup, phase); err != nil {
		return err
	}
	// measure runs one closed-loop load of op and reads the database's block
	// counters around it.
	measure := func(what string, op func(ctx context.Context, rng *rand.Rand) error) (summary, bufferUse, error) {
		from, err := readBlocks(ctx, e, db)
		if err != nil {
			return summary{}, bufferUse{}, err
		}
		spec := loadSpec{name: name + " " + what, workers: loadClients, warmup: e.opts.warmup, duration: phase, cpu: e.cpuNow}
		sums, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, _ int, rng *rand.Rand) (int, error) {
			return 0, op(ctx, rng)
		})
		if err != nil {
			return summary{}, bufferUse{}, err
		}
		to, err := readBlocks(ctx, e, db)
		return sums[0], to.since(from), err
	}
	if c.Send, c.SendBuffers, err = measure("send", func(ctx context.Context, rng *rand.Rand) error {
		r, u := pick(rng)
		return e.api.send(ctx, u, r, "chatbench g "+strconv.FormatUint(rng.Uint64(), 36))
	}); err != nil {
		return err
	}
	c.List, c.ListBuffers, err = measure("list", func(ctx context.Context, rng *rand.Rand) error {
		r, u := pick(rng)
		return e.api.listRoom(ctx, u, r)
	})
	return err
}

// bufferUse is where a database's block reads were served from.
type bufferUse struct {
	// Hits were found in shared_buffers; Reads came from the operating
	// system (its page cache, or the disk).
	Hits  int64 `json:"hits"`
	Reads int64 `json:"reads"`
}

// hitRatio is the share of block reads found in shared_buffers.
func (b bufferUse) hitRatio() float64 { return ratio(float64(b.Hits), float64(b.Hits+b.Reads)) }

func (b bufferUse) since(from bufferUse) bufferUse {
	return bufferUse{Hits: b.Hits - from.Hits, Reads: b.Reads - from.Reads}
}

// readBlocks reads a database's cumulative block counts.
func readBlocks(ctx context.Context, e *env, db string) (bufferUse, error) {
	conn, err := pgx.Connect(ctx, e.pg.URL("postgres"))
	if err != nil {
		return bufferUse{}, err
	}
	defer conn.Close(context.Background())
	var b bufferUse
	err = conn.QueryRow(ctx, `SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = $1`, db).Scan(&b.Hits, &b.Reads)
	return b, err
}

// prepareGrowthDB fills a fresh database as an installation with that log
// would be: migrated, the log in the event store, each user's password
// stored as registration stores it (outside the log), the read model
// rebuilt from the log by projections.Rebuild (what `chatctl projections
// rebuild` runs), and vacuumed, as autovacuum would have done by then.
func prepareGrowthDB(ctx context.Context, e *env, url string, log synthlog.Config, c *growthCell) error {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := chatd.DefaultConfig()
	cfg.DatabaseURL = url
	pool, _, err := chatd.OpenDatabase(ctx, cfg, quiet)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := migrations.Apply(ctx, pool); err != nil {
		return err
	}
	e.logf("g: writing a log of %s events (%d users, %s rooms)", formatCount(log.Events), log.Users, formatCount(log.Rooms))
	t0 := time.Now()
	if err := synthlog.Load(ctx, pool, synthlog.Rows(log)); err != nil {
		return fmt.Errorf("write the log: %w", err)
	}
	c.WriteSeconds = time.Since(t0).Seconds()
	// bcrypt's lowest cost: logging in is not measured.
	hash, err := auth.NewBcrypt(bcrypt.MinCost).Hash(growthPassword)
	if err != nil {
		return err
	}
	creds := postgres.NewCredentials(pool)
	for u := int64(1); u <= int64(log.Users); u++ {
		if err := creds.Set(ctx, u, hash); err != nil {
			return err
		}
	}
	store, closeStore, err := chatd.OpenStore(ctx, cfg, pool, notifier.New(notifier.Pool(pool), quiet), quiet)
	if err != nil {
		return err
	}
	defer closeStore()
	e.logf("g: rebuilding the read model")
	t0 = time.Now()
	n, err := projections.Rebuild(ctx, pool, store, projections.NewChat(domain.NewRegistry()), projections.RebuildOptions{Logger: quiet, BatchSize: 5000})
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	c.RebuildSeconds = time.Since(t0).Seconds()
	if n != int64(log.Events) {
		return fmt.Errorf("rebuild replayed %d events of %d", n, log.Events)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	var size int64
	if err := pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		return err
	}
	c.DatabaseMB = float64(size) / (1 << 20)
	return nil
}

// adminExec runs a statement on the server's postgres database.
func adminExec(ctx context.Context, e *env, sql string) error {
	conn, err := pgx.Connect(ctx, e.pg.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// firstMeasured is the grid's first cell that ran: the other cells are
// quoted against it.
func (g *growthResult) firstMeasured() *growthCell {
	for i := range g.Cells {
		if g.Cells[i].Skipped == "" {
			return &g.Cells[i]
		}
	}
	return nil
}

func (c *growthCell) label() string {
	return fmt.Sprintf("%s events, %s rooms", formatCount(c.Events), formatCount(c.Rooms))
}

// rowsG are two lines per cell of the results table: its sends and lists.
func rowsG(g *growthResult) []row {
	var out []row
	first := g.firstMeasured()
	for i := range g.Cells {
		c := &g.Cells[i]
		if c.Skipped != "" {
			out = append(out, row{scenario: "g: " + c.label(), n: "-", errs: "-", rate: "-", p50: "-", p99: "-", ratio: "n/a (see below)"})
			continue
		}
		s := loadRow("g: send, "+c.label(), c.Send, "sends/s")
		s.ratio = fmt.Sprintf("p50 = %s x INSERT p50; p50 %s, p99 %s x first cell",
			fmtRatio(ratio(c.Send.P50Ms, c.Insert.P50Ms)), fmtRatio(ratio(c.Send.P50Ms, first.Send.P50Ms)), fmtRatio(ratio(c.Send.P99Ms, first.Send.P99Ms)))
		l := loadRow("g: list, "+c.label(), c.List, "lists/s")
		l.ratio = fmt.Sprintf("p50 = %s x INSERT p50; p50 %s x first cell",
			fmtRatio(ratio(c.List.P50Ms, c.Insert.P50Ms)), fmtRatio(ratio(c.List.P50Ms, first.List.P50Ms)))
		out = append(out, s, l)
	}
	return out
}

// detailsG are the facts behind g's lines, and the grid as a Markdown
// table.
func detailsG(g *growthResult) []string {
	out := []string{fmt.Sprintf("g: each cell: a fresh database; a synthetic log (%d users, rooms of 3 to 6 of them, messages round-robin over the rooms, a read receipt every 20 messages; the users' and rooms' creation counted in the events) copied into the event store; the read model rebuilt by projections.Rebuild; chatd started on it; the rooms' members logged in; one send to each room up to chatd's state cache size (%d); then the baseline's INSERTs, %d clients sending as a random member of a random room, and the same listing the newest page of a random room",
		g.Users, stateCacheRooms, g.Clients)}
	for i := range g.Cells {
		c := &g.Cells[i]
		if c.Skipped != "" {
			out = append(out, "g: "+c.label()+": n/a: "+c.Skipped)
			continue
		}
		out = append(out, fmt.Sprintf("g: %s: log written in %.1fs, rebuilt in %.1fs, database %.0f MiB, %d rooms primed in %.1fs; INSERT p50 %s, p99 %s (%.0f tx/s); send mean %s, max %s; list p99 %s",
			c.label(), c.WriteSeconds, c.RebuildSeconds, c.DatabaseMB, c.Primed, c.PrimeSeconds, fmtMs(c.Insert.P50Ms), fmtMs(c.Insert.P99Ms), c.Insert.Rate,
			fmtMs(c.Send.MeanMs), fmtMs(c.Send.MaxMs), fmtMs(c.List.P99Ms)),
			fmt.Sprintf("g: %s: blocks found in shared_buffers: %s of %d during the sends, %s of %d during the lists",
				c.label(), fmtRatio(c.SendBuffers.hitRatio()), c.SendBuffers.Hits+c.SendBuffers.Reads,
				fmtRatio(c.ListBuffers.hitRatio()), c.ListBuffers.Hits+c.ListBuffers.Reads))
	}
	return append(out, growthMarkdown(g)...)
}

// growthMarkdown is the grid as a Markdown table, each figure next to its
// ratio to the first cell and to the INSERT p50 of its own cell.
func growthMarkdown(g *growthResult) []string {
	first := g.firstMeasured()
	out := []string{"g: the grid as Markdown (ratios: to the first cell; to the INSERT p50 measured in the same cell; PostgreSQL's CPU time per request):", "",
		"| events | rooms | messages per room | send p50 | send p99 | list p50 | INSERT p50 (same cell) | send p50 / INSERT p50 | list p50 / INSERT p50 | PostgreSQL CPU per send, per list |",
		"| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"}
	for i := range g.Cells {
		c := &g.Cells[i]
		if c.Skipped != "" {
			out = append(out, fmt.Sprintf("| %s | %s | | n/a | n/a | n/a | | | | |", thousands(c.Events), thousands(c.Rooms)))
			continue
		}
		perRoom := float64(synthlog.Config{Events: c.Events, Users: g.Users, Rooms: c.Rooms}.Messages()) / float64(c.Rooms)
		out = append(out, fmt.Sprintf("| %s | %s | %s | %s (%s) | %s (%s) | %s (%s) | %s | %s | %s | %s, %s |",
			thousands(c.Events), thousands(c.Rooms), thousands(int(math.Round(perRoom))),
			fmtMs(c.Send.P50Ms), fmtRatio(ratio(c.Send.P50Ms, first.Send.P50Ms)),
			fmtMs(c.Send.P99Ms), fmtRatio(ratio(c.Send.P99Ms, first.Send.P99Ms)),
			fmtMs(c.List.P50Ms), fmtRatio(ratio(c.List.P50Ms, first.List.P50Ms)),
			fmtMs(c.Insert.P50Ms), fmtRatio(ratio(c.Send.P50Ms, c.Insert.P50Ms)), fmtRatio(ratio(c.List.P50Ms, c.Insert.P50Ms)),
			postgresPerRequest(c.Send), postgresPerRequest(c.List)))
	}
	return append(out, "")
}

// postgresPerRequest is the CPU time PostgreSQL spent per request of a
// load, which depends less on what else the machine runs than latency does.
func postgresPerRequest(s summary) string {
	if s.CPU == nil || s.Rate == 0 {
		return "n/a"
	}
	return fmtMs(s.CPU.Postgres / s.Rate * 1000)
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
