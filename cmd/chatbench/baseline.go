package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// baselineResult is the raw write rate of the same PostgreSQL: the most a
// durable send could hope for, since each send commits at least once.
type baselineResult struct {
	Connections int     `json:"connections"`
	Inserts     summary `json:"inserts"`
	// Settings are the server's durability settings, as SHOW reports them.
	Settings map[string]string `json:"settings"`
}

const baselineConns = 16

// durabilitySettings are shown with the baseline: they decide what a commit
// costs.
var durabilitySettings = []string{"fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"}

// runBaseline measures single-row INSERT transactions (autocommit) into a
// plain table, on baselineConns connections, in a database of its own on
// the server chatd uses.
func runBaseline(ctx context.Context, e *env) (*baselineResult, error) {
	const db = "chatbench_baseline"
	e.logf("baseline: %d connections doing single-row INSERT transactions for %s", baselineConns, e.opts.duration)
	admin, err := pgx.Connect(ctx, e.pg.URL("postgres"))
	if err != nil {
		return nil, err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+db)
	admin.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(e.pg.URL(db))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = baselineConns, baselineConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE messages (
		id bigserial PRIMARY KEY,
		room bigint NOT NULL,
		sender bigint NOT NULL,
		text text NOT NULL,
		created_at timestamptz NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	spec := loadSpec{name: "baseline", workers: baselineConns, warmup: e.opts.warmup, duration: e.opts.duration, cpu: e.cpuNow}
	sums, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, w int, rng *rand.Rand) (int, error) {
		_, err := pool.Exec(ctx, `INSERT INTO messages (room, sender, text, created_at) VALUES ($1, $2, $3, now())`,
			rng.Int64N(100)+1, int64(w+1), fmt.Sprintf("chatbench baseline %d", rng.Int64()))
		return 0, err
	})
	if err != nil {
		return nil, err
	}
	res := &baselineResult{Connections: baselineConns, Inserts: sums[0], Settings: map[string]string{}}
	for _, name := range durabilitySettings {
		var v string
		if err := pool.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
			return nil, err
		}
		res.Settings[name] = v
	}
	return res, nil
}
