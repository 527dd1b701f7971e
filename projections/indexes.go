package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/migrations"
)

// dropSecondaryIndexes drops the indexes of schema that back no constraint
// and returns their definitions.
func dropSecondaryIndexes(ctx context.Context, pool *pgxpool.Pool, schema migrations.Schema) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = $1 AND NOT EXISTS (
			SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = $1::regnamespace)`, schema.Name())
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", schema.Name(), err)
	}
	type index struct{ name, def string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var i index
		return i, r.Scan(&i.name, &i.def)
	})
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", schema.Name(), err)
	}
	defs := make([]string, 0, len(list))
	for _, i := range list {
		if _, err := pool.Exec(ctx, `DROP INDEX `+schema.Qualified(i.name)); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", i.name, err)
		}
		defs = append(defs, i.def)
	}
	return defs, nil
}

// maintenanceWorkMem is the sort memory of each index build: a sort that
// fits in memory is much cheaper than one that spills to disk.
const maintenanceWorkMem = "1GB"

// createIndexes builds indexes two at a time, each with room to sort in
// memory, and then runs the statements after (ANALYZE, say) on the same two
// connections: the first of them starts while the last index is built.
func createIndexes(ctx context.Context, pool *pgxpool.Pool, defs []string, after ...string) error {
	work := make(chan string)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				errs <- err
				for range work {
				}
				return
			}
			defer conn.Release()
			_, err = conn.Exec(ctx, `SELECT set_config('maintenance_work_mem', $1, false)`, maintenanceWorkMem)
			for def := range work {
				if err == nil {
					_, err = conn.Exec(ctx, def)
				}
			}
			// The connection goes back to the pool at the server's
			// setting, whatever happened.
			if _, rerr := conn.Exec(context.WithoutCancel(ctx), `RESET maintenance_work_mem`); err == nil {
				err = rerr
			}
			errs <- err
		}()
	}
	for _, d := range append(defs, after...) {
		work <- d
	}
	close(work)
	return errors.Join(<-errs, <-errs)
}
