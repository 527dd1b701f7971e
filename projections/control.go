package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/migrations"
)

// This file is the operators' control of projections: pause and resume,
// stored in the database (public.projection_states, core migration 0012)
// so that the projector of every process honours them, and the state each
// projection is in, for `chatctl projections list`.

// ErrPaused is returned (wrapped) for a batch refused because an operator
// paused its projection. The projector then waits until it is resumed.
var ErrPaused = errors.New("projection paused")

// ErrUnknownProjection is returned by Pause and Resume for a name that is
// not one of Names.
var ErrUnknownProjection = errors.New("unknown projection")

// SearchName is the checkpoint name of the search projection.
const SearchName = "search"

// Names are the projections of a chat installation, in the order
// operators see them.
var Names = []string{ChatName, SearchName}

// ResumePoll is how often a paused projector looks whether it was resumed.
const ResumePoll = 250 * time.Millisecond

// The states of a projection, as `chatctl projections list` shows them.
const (
	StateRunning     = "running"
	StatePaused      = "paused"
	StateRebuilding  = "rebuilding"
	StateBackfilling = "backfilling"
)

// prepareState makes sure the projection's control row exists, so that
// operators find it (and processes of earlier versions, whose batches hold
// it, see projection_unpaused).
func (p *Projector) prepareState(ctx context.Context) error {
	if _, err := p.pool.Exec(ctx, `INSERT INTO public.projection_states (projection) VALUES ($1) ON CONFLICT DO NOTHING`,
		p.proj.Name()); err != nil {
		return fmt.Errorf("projection state of %s: %w", p.proj.Name(), err)
	}
	return nil
}

// markCaughtUp records that the projection has read up to the head of the
// log once: it is no longer backfilling. Best effort: it is told again on
// the next start.
func (p *Projector) markCaughtUp(ctx context.Context) {
	if _, err := p.pool.Exec(ctx, `UPDATE public.projection_states SET caught_up_at = now()
		WHERE projection = $1 AND caught_up_at IS NULL`, p.proj.Name()); err != nil && ctx.Err() == nil {
		p.log.Warn("cannot record that the projection caught up", "projection", p.proj.Name(), "err", err)
	}
}

// waitResumed returns once the projection is no longer paused, or
// ctx.Err() when ctx ends.
func (p *Projector) waitResumed(ctx context.Context) error {
	p.log.Info("projection paused; waiting to be resumed", "projection", p.proj.Name())
	for {
		st, err := ReadState(ctx, p.pool, p.proj.Name())
		if err == nil && !st.Paused {
			p.log.Info("projection resumed", "projection", p.proj.Name())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ResumePoll):
		}
	}
}

// State is how an operator left a projection.
type State struct {
	Paused bool
	// ChangedAt is when it was last paused or resumed (zero: never).
	ChangedAt time.Time
	// RebuildingSince is set while a rebuild of it runs.
	RebuildingSince *time.Time
	// CaughtUpAt is when it first reached the head of the log; nil while
	// it backfills.
	CaughtUpAt *time.Time
	// Known is false when no process has run it yet.
	Known bool
}

// Name returns the state's word for operators.
func (s State) Name() string {
	switch {
	case s.Paused:
		return StatePaused
	case s.RebuildingSince != nil:
		return StateRebuilding
	case s.CaughtUpAt == nil:
		return StateBackfilling
	}
	return StateRunning
}

// Querier runs a query: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadState returns the stored state of projection name.
func ReadState(ctx context.Context, db Querier, name string) (State, error) {
	var s State
	err := db.QueryRow(ctx, `SELECT paused, changed_at, rebuilding_since, caught_up_at
		FROM public.projection_states WHERE projection = $1`, name).Scan(&s.Paused, &s.ChangedAt, &s.RebuildingSince, &s.CaughtUpAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, nil
	}
	if err != nil {
		return s, fmt.Errorf("read the state of projection %s: %w", name, err)
	}
	s.Known = true
	return s, nil
}

// Pause stops projection name in every process: it waits for a batch in
// flight to commit, and after it returns no batch of it commits until
// Resume. The checkpoint stays where it is.
func Pause(ctx context.Context, pool *pgxpool.Pool, name string) error {
	return setPaused(ctx, pool, name, true)
}

// Resume lets projection name carry on from its checkpoint.
func Resume(ctx context.Context, pool *pgxpool.Pool, name string) error {
	return setPaused(ctx, pool, name, false)
}

// projectionLock is the first key of the projections' advisory locks
// ("proj"), as core migration 0017 takes it.
const projectionLock = 0x70726f6a

func setPaused(ctx context.Context, pool *pgxpool.Pool, name string, paused bool) error {
	if !known(name) {
		return fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	// The lock waits for the batches in flight, which hold it shared until
	// they end (core 0017), and makes the batches after it see the change.
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, projectionLock, name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO public.projection_states AS s (projection, paused) VALUES ($1, $2)
			ON CONFLICT (projection) DO UPDATE SET paused = excluded.paused, changed_at = now()`, name, paused)
		return err
	})
	if err != nil {
		return fmt.Errorf("set projection %s paused=%t: %w", name, paused, err)
	}
	return nil
}

// MarkRebuilding records that a rebuild of name runs (on) or ended.
func MarkRebuilding(ctx context.Context, pool *pgxpool.Pool, name string, on bool) error {
	_, err := pool.Exec(ctx, `INSERT INTO public.projection_states AS s (projection, rebuilding_since)
		VALUES ($1, CASE WHEN $2 THEN now() END)
		ON CONFLICT (projection) DO UPDATE SET rebuilding_since = excluded.rebuilding_since`, name, on)
	if err != nil {
		return fmt.Errorf("record the rebuild of %s: %w", name, err)
	}
	return nil
}

// SchemaOf is the schema that holds the tables and checkpoint of
// projection name: the chat read model's, or the search index's.
func SchemaOf(name string) migrations.Schema {
	if name == SearchName {
		return migrations.Search
	}
	return migrations.ReadModel
}

func known(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}
