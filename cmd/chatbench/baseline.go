package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

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
	e.logf("baseline: %d connections doing single-row INSERT transactions for %s", baselineConns, e.opts.duration)
	pool, err := openBaseline(ctx, e)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	inserts, err := insertLoad(ctx, e, pool, "baseline", e.opts.warmup, e.opts.duration)
	if err != nil {
		return nil, err
	}
	res := &baselineResult{Connections: baselineConns, Inserts: inserts, Settings: map[string]string{}}
	for _, name := range durabilitySettings {
		var v string
		if err := pool.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
			return nil, err
		}
		res.Settings[name] = v
	}
	return res, nil
}

const baselineDB = "chatbench_baseline"

// openBaseline returns baselineConns connections to the baseline's
// database, making it and its table when missing.
func openBaseline(ctx context.Context, e *env) (*pgxpool.Pool, error) {
	admin, err := pgx.Connect(ctx, e.pg.URL("postgres"))
	if err != nil {
		return nil, err
	}
	var exists bool
	err = admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, baselineDB).Scan(&exists)
	if err == nil && !exists {
		_, err = admin.Exec(ctx, "CREATE DATABASE "+baselineDB)
	}
	admin.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(e.pg.URL(baselineDB))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = baselineConns, baselineConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS messages (
		id bigserial PRIMARY KEY,
		room bigint NOT NULL,
		sender bigint NOT NULL,
		text text NOT NULL,
		created_at timestamptz NOT NULL
	)`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	return pool, nil
}

// insertLoad is the baseline's load: each of the pool's baselineConns
// connections doing single-row INSERT transactions back to back.
func insertLoad(ctx context.Context, e *env, pool *pgxpool.Pool, name string, warmup, duration time.Duration) (summary, error) {
	spec := loadSpec{name: name, workers: baselineConns, warmup: warmup, duration: duration, cpu: e.cpuNow}
	sums, err := closedLoop(ctx, spec, e.errs, func(ctx context.Context, w int, rng *rand.Rand) (int, error) {
		_, err := pool.Exec(ctx, `INSERT INTO messages (room, sender, text, created_at) VALUES ($1, $2, $3, now())`,
			rng.Int64N(100)+1, int64(w+1), fmt.Sprintf("chatbench baseline %d", rng.Int64()))
		return 0, err
	})
	if err != nil {
		return summary{}, err
	}
	return sums[0], nil
}
