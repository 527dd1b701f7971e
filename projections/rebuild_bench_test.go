package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore/postgres"
	"github.com/evchat/evchat/internal/pgtest"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// syntheticLog returns the rows of a chat log of n events: 200 users, 1,000
// rooms of 3 to 6 members, then messages spread over the rooms with a read
// receipt every 20 messages.
func syntheticLog(n int) [][]any {
	reg := domain.NewRegistry()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rows [][]any
	revs := map[string]int64{}
	add := func(stream string, e domain.Event, actor int64) {
		typ, data, _ := reg.Encode(e)
		md, _ := json.Marshal(domain.Metadata{ActorID: actor, RequestID: "bench", Time: at, Version: reg.Version(typ)})
		at = at.Add(time.Millisecond)
		rows = append(rows, []any{uuid.Must(uuid.NewV7()), stream, revs[stream], typ, string(data), string(md)})
		revs[stream]++
	}
	const users, rooms = 200, 1000
	for u := int64(1); u <= users; u++ {
		add(domain.UsernameStream("user"+strconv.FormatInt(u, 10)), domain.UsernameReserved{Username: "user" + strconv.FormatInt(u, 10), UserID: u}, u)
		add(domain.UserStream(u), domain.UserRegistered{UserID: u, Username: "user" + strconv.FormatInt(u, 10), PasswordSet: true}, u)
	}
	members := map[int64][]int64{}
	membership := int64(0)
	for r := int64(1); r <= rooms; r++ {
		size := 3 + r%4
		var ms []domain.Membership
		for i := int64(0); i < size; i++ {
			u := (r*7+i*13)%users + 1
			membership++
			ms = append(ms, domain.Membership{UserID: u, MembershipID: membership})
			members[r] = append(members[r], u)
		}
		add(domain.ConversationStream(r), domain.ConversationCreated{ConversationID: r, Type: domain.Group, CreatedBy: members[r][0], Members: ms}, members[r][0])
	}
	msg := int64(0)
	for len(rows) < n {
		r := msg%rooms + 1
		msg++
		sender := members[r][msg%int64(len(members[r]))]
		var receivers []int64
		for _, u := range members[r] {
			if u != sender {
				receivers = append(receivers, u)
			}
		}
		add(domain.ConversationStream(r), domain.MessageSent{ConversationID: r, MessageID: msg, SenderID: sender, Receivers: receivers, Text: "message " + strconv.FormatInt(msg, 10)}, sender)
		if msg%20 == 0 && len(rows) < n {
			add(domain.ReceiptStream(r, receivers[0]), domain.MessagesRead{ConversationID: r, ReaderID: receivers[0], MessageIDs: []int64{msg}}, receivers[0])
		}
	}
	return rows
}

var eventColumns = []string{"event_id", "stream_id", "revision", "type", "data", "metadata"}

// BenchmarkRebuild rebuilds the read model from a log of REBUILD_EVENTS
// events (default 1,000,000) and reports events/s, next to a raw COPY of the
// same rows into a plain table measured in the same run (copy-rows/s) and
// the ratio. It runs once whatever b.N is.
func BenchmarkRebuild(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("REBUILD_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "readmodel, public"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Apply(ctx, pool); err != nil {
		b.Fatal(err)
	}
	rows := syntheticLog(n)
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO streams SELECT stream_id, max(revision) FROM events GROUP BY stream_id; ANALYZE events`); err != nil {
		b.Fatal(err)
	}

	// Baseline: a raw COPY of the same rows into a plain table.
	if _, err := pool.Exec(ctx, `CREATE TABLE copy_baseline (event_id uuid, stream_id text, revision bigint, type text, data jsonb, metadata jsonb)`); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"copy_baseline"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	copyRate := float64(n) / time.Since(start).Seconds()

	store := postgres.New(pool, postgres.Options{})
	defer store.Close()
	b.ResetTimer()
	goCPU, pgCPU := cpuSeconds(b, pool)
	start = time.Now()
	done, err := projections.Rebuild(ctx, pool, store, projections.NewChat(domain.NewRegistry()), projections.RebuildOptions{BatchSize: 10000})
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	goCPU2, pgCPU2 := cpuSeconds(b, pool)
	b.StopTimer()
	var msgs int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM readmodel.messages`).Scan(&msgs); err != nil || msgs == 0 {
		b.Fatalf("rebuilt model has %d messages: %v", msgs, err)
	}
	rate := float64(done) / elapsed.Seconds()
	b.ReportMetric(float64(done), "events")
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(copyRate, "copy-rows/s")
	b.ReportMetric(rate/copyRate, "rebuild/copy")
	fmt.Fprintf(os.Stderr, "rebuild: %d events in %.1fs: %.0f events/s; raw COPY of the same rows: %.0f rows/s; ratio %.2f\n",
		done, elapsed.Seconds(), rate, copyRate, rate/copyRate)
	if goCPU >= 0 && pgCPU >= 0 {
		b.ReportMetric(goCPU2-goCPU, "go-cpu-s")
		b.ReportMetric(pgCPU2-pgCPU, "pg-cpu-s")
		fmt.Fprintf(os.Stderr, "rebuild CPU: %.1fs in this process, %.1fs in the PostgreSQL server\n", goCPU2-goCPU, pgCPU2-pgCPU)
	}
}

// cpuSeconds returns the CPU time used so far by this process and by the
// PostgreSQL server pool is connected to (its postmaster, its processes and
// the processes of it that ended), from /proc: on a shared machine the CPU a
// rebuild costs varies less than the time it takes. Both are -1 when the
// server runs elsewhere or /proc cannot tell.
func cpuSeconds(b *testing.B, pool *pgxpool.Pool) (self, server float64) {
	// utime, stime, cutime, cstime and the parent's pid of /proc/<pid>/stat.
	stat := func(pid string) (ppid int, ticks [4]int64, ok bool) {
		data, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return 0, ticks, false
		}
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 15 {
			return 0, ticks, false
		}
		ppid, _ = strconv.Atoi(f[1])
		for i := range ticks {
			ticks[i], _ = strconv.ParseInt(f[11+i], 10, 64)
		}
		return ppid, ticks, true
	}
	const hz = 100 // USER_HZ
	if os.Getenv(pgtest.EnvURL) != "" {
		return -1, -1 // a server of its own, maybe on another machine
	}
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	postmaster, _, ok := stat(strconv.Itoa(backend))
	_, me, ok2 := stat("self")
	if !ok || !ok2 {
		return -1, -1
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return -1, -1
	}
	var ticks int64
	for _, p := range procs {
		ppid, t, ok := stat(p.Name())
		switch {
		case !ok:
		case p.Name() == strconv.Itoa(postmaster):
			ticks += t[0] + t[1] + t[2] + t[3]
		case ppid == postmaster:
			ticks += t[0] + t[1]
		}
	}
	return float64(me[0]+me[1]) / hz, float64(ticks) / hz
}
