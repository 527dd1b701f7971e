package projections

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// TableDiff is one table's comparison by Verify.
type TableDiff struct {
	Table       string
	LiveRows    int64
	RebuiltRows int64
	LiveSum     string
	RebuiltSum  string
	OnlyLive    []string // up to 10 rows only in the live table
	OnlyRebuilt []string // up to 10 rows only in the rebuilt table
	Equal       bool     // the checksums are equal
}

// Verify rebuilds the read model into a scratch schema up to the live
// checkpoint and compares the two row for row (a checksum per table, and the
// differing rows of a table whose checksums differ). The live projector is
// parked while the two are compared. The scratch schema is dropped after.
func Verify(ctx context.Context, pool *pgxpool.Pool, log LogReader, chat *Chat, o RebuildOptions) ([]TableDiff, eventstore.Position, error) {
	o = o.withDefaults()
	if err := freshSchema(ctx, pool, verifySchema); err != nil {
		return nil, eventstore.Position{}, err
	}
	defer func() { _ = dropSchema(context.WithoutCancel(ctx), pool, verifySchema) }()
	live, err := ReadCheckpoint(ctx, pool, migrations.ReadModel, chat.Name())
	if err != nil {
		return nil, live, err
	}
	cursor, _, err := buildInto(ctx, pool, log, chat, verifySchema, eventstore.Position{}, &live, o)
	if err != nil {
		return nil, live, err
	}
	if err := countUnread(ctx, pool, verifySchema); err != nil {
		return nil, live, fmt.Errorf("verify: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, live, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, `LOCK TABLE `+migrations.ReadModel.Qualified(migrations.CheckpointsTable)+` IN EXCLUSIVE MODE`); err != nil {
		return nil, live, err
	}
	// The live model may have moved on while the scratch one was built.
	if live, err = ReadCheckpoint(ctx, tx, migrations.ReadModel, chat.Name()); err != nil {
		return nil, live, err
	}
	var rest []eventstore.RecordedEvent
	for cursor.Less(live) {
		events, err := log.ReadAll(ctx, cursor, o.BatchSize)
		if err != nil {
			return nil, live, err
		}
		cut := sort.Search(len(events), func(i int) bool { return live.Less(events[i].Position) })
		if cut == 0 {
			break
		}
		rest = append(rest, events[:cut]...)
		cursor = events[cut-1].Position
	}
	if len(rest) > 0 {
		if err := applyChunk(ctx, tx, chat, verifySchema, rest); err != nil {
			return nil, live, err
		}
	}
	diffs, err := compare(ctx, tx, migrations.ReadModel, verifySchema)
	return diffs, live, err
}

// tableSum is the row count and checksum of table %[2]s in key order %[1]s.
const tableSum = `SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY %s)), '') FROM %s t`

// compare sums every read-model table of live and rebuilt and, for a table
// whose sums differ, lists rows only one of them has.
func compare(ctx context.Context, tx pgx.Tx, live, rebuilt migrations.Schema) ([]TableDiff, error) {
	var diffs []TableDiff
	for _, t := range live.Tables() {
		d := TableDiff{Table: t.Name}
		sum := func(schema migrations.Schema, rows *int64, out *string) error {
			return tx.QueryRow(ctx, fmt.Sprintf(tableSum, t.OrderBy(), schema.Qualified(t.Name))).Scan(rows, out)
		}
		if err := sum(live, &d.LiveRows, &d.LiveSum); err != nil {
			return nil, err
		}
		if err := sum(rebuilt, &d.RebuiltRows, &d.RebuiltSum); err != nil {
			return nil, err
		}
		d.Equal = d.LiveSum == d.RebuiltSum
		if !d.Equal {
			var err error
			if d.OnlyLive, err = except(ctx, tx, live, rebuilt, t.Name); err != nil {
				return nil, err
			}
			if d.OnlyRebuilt, err = except(ctx, tx, rebuilt, live, t.Name); err != nil {
				return nil, err
			}
		}
		diffs = append(diffs, d)
	}
	return diffs, nil
}

// except returns up to 10 rows of table that a has and b has not.
func except(ctx context.Context, tx pgx.Tx, a, b migrations.Schema, table string) ([]string, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT t::text FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) t LIMIT 10`,
		a.Qualified(table), b.Qualified(table)))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
