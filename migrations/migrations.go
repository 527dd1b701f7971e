// Package migrations holds the numbered SQL files of the database schema and
// applies them.
//
// There are three sets. core/ holds what is never rebuilt: the event log, the
// id sequences, auth state. readmodel/ holds the projected tables; its files
// use unqualified names and are applied with search_path set to a read-model
// schema, so that a rebuild can apply the same files to a fresh schema beside
// the live one and swap the two. search/ holds the full-text search index,
// a projection of its own in a schema of its own, applied the same way.
//
// The runner is deliberately small: files are applied in order, each in its
// own transaction together with its row in schema_migrations, under a
// transaction-level advisory lock so that processes starting together do not
// race.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed core/*.sql readmodel/*.sql search/*.sql
var files embed.FS

// The sets: the folders of numbered files.
const (
	CoreSet      = "core"
	ReadModelSet = "readmodel"
	// SearchSet holds the search index's tables, applied to the schema
	// Search (and to one beside it by a rebuild of the index).
	SearchSet = "search"
)

// lockKey is the advisory lock taken while migrating ("evchat-m").
const lockKey = 0x65766368_61742d6d

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load returns the migrations of a set (CoreSet or ReadModelSet) in order.
func Load(set string) ([]Migration, error) {
	entries, err := fs.ReadDir(files, set)
	if err != nil {
		return nil, fmt.Errorf("load migrations %s: %w", set, err)
	}
	var out []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("load migrations %s: bad file name %q", set, e.Name())
		}
		body, err := fs.ReadFile(files, path.Join(set, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load migrations %s: %w", set, err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("load migrations %s: version %d twice", set, out[i].Version)
		}
	}
	return out, nil
}

// Apply brings the core schema and the live read-model schema up to date.
// It returns the names of the files it applied.
func Apply(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	core, err := apply(ctx, pool, CoreSet, "public")
	if err != nil {
		return nil, err
	}
	rm, err := apply(ctx, pool, ReadModelSet, ReadModel.Name())
	if err != nil {
		return append(core, rm...), err
	}
	search, err := apply(ctx, pool, SearchSet, Search.Name())
	return append(append(core, rm...), search...), err
}

// ApplySearch creates schema (if needed) and applies the search set to it.
func ApplySearch(ctx context.Context, pool *pgxpool.Pool, schema Schema) error {
	_, err := apply(ctx, pool, SearchSet, schema.Name())
	return err
}

// ApplyReadModel creates schema (if needed) and applies the read-model set to it.
func ApplyReadModel(ctx context.Context, pool *pgxpool.Pool, schema Schema) error {
	_, err := apply(ctx, pool, ReadModelSet, schema.Name())
	return err
}

func apply(ctx context.Context, pool *pgxpool.Pool, set, schema string) ([]string, error) {
	ms, err := Load(set)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range ms {
		done, err := applyOne(ctx, pool, set, schema, m)
		if err != nil {
			return applied, fmt.Errorf("migrate %s/%s into %s: %w", set, m.Name, schema, err)
		}
		if done {
			applied = append(applied, set+"/"+m.Name)
		}
	}
	return applied, nil
}

func applyOne(ctx context.Context, pool *pgxpool.Pool, set, schema string, m Migration) (bool, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.schema_migrations (
		set_name text NOT NULL, schema_name text NOT NULL, version int NOT NULL,
		name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (set_name, schema_name, version))`); err != nil {
		return false, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM public.schema_migrations
		WHERE set_name = $1 AND schema_name = $2 AND version = $3)`, set, schema, m.Version).Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, ident+", public"); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO public.schema_migrations (set_name, schema_name, version, name)
		VALUES ($1, $2, $3, $4)`, set, schema, m.Version, m.Name); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}
