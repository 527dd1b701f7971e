package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/evchat/evchat/projections"
)

// list prints every projection: checkpoint, lag and state.
func (e *env) list(ctx context.Context, args []string) error {
	fs, err := e.subcommand("projections list", "projections list", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: list takes no arguments", errUsage)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	return e.projectionTable(ctx, c)
}

// projectionTable prints a line per projection: its checkpoint, how many
// events and how long it is behind the log (the age of the oldest event
// it has not applied), its state and when its checkpoint last moved.
//
// States: running; paused (by chatctl projections pause); rebuilding (a
// chatctl projections rebuild of it runs); backfilling (it has not yet
// reached the head of the log since it was added); not started (no
// process has run it: chatd runs with search off, say).
func (e *env) projectionTable(ctx context.Context, c *conn) error {
	fmt.Fprintf(e.out, "%-10s %-20s %-12s %-12s %-12s %s\n", "PROJECTION", "CHECKPOINT", "LAG EVENTS", "LAG", "STATE", "UPDATED")
	for _, name := range projections.Names {
		schema := projections.SchemaOf(name)
		cp, err := projections.ReadCheckpoint(ctx, c.pool, schema, name)
		if err != nil {
			return err
		}
		var updated *time.Time
		_ = c.pool.QueryRow(ctx, `SELECT updated_at FROM `+schema.Qualified("checkpoints")+` WHERE projection = $1`, name).Scan(&updated)
		lagEvents, lagSince, err := lag(ctx, c.store, cp)
		if err != nil {
			return err
		}
		st, err := projections.ReadState(ctx, c.pool, name)
		if err != nil {
			return err
		}
		state := st.Name()
		if !st.Known {
			state = "not started"
		}
		lagText := "0s"
		if lagEvents > 0 {
			lagText = time.Since(lagSince).Round(time.Millisecond).String()
		}
		up := "never"
		if updated != nil {
			up = updated.UTC().Format(time.RFC3339)
		}
		count := fmt.Sprint(lagEvents)
		if lagEvents >= lagCountLimit {
			count = fmt.Sprintf(">=%d", lagCountLimit)
		}
		fmt.Fprintf(e.out, "%-10s %-20s %-12s %-12s %-12s %s\n", name, cp, count, lagText, state, up)
	}
	return nil
}

// pauseResume pauses or resumes one projection in every process.
func (e *env) pauseResume(ctx context.Context, verb string, args []string) error {
	fs, err := e.subcommand("projections "+verb, "projections "+verb+" <name>", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: %s needs one projection name (%v)", errUsage, verb, projections.Names)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	name := fs.Arg(0)
	if verb == "pause" {
		err = projections.Pause(ctx, c.pool, name)
	} else {
		err = projections.Resume(ctx, c.pool, name)
	}
	if errors.Is(err, projections.ErrUnknownProjection) {
		return fmt.Errorf("%w: %w (there are: %v)", errUsage, err, projections.Names)
	}
	if err != nil {
		return err
	}
	if verb == "pause" {
		fmt.Fprintf(e.out, "%s paused: it keeps its checkpoint and applies nothing until resumed\n", name)
	} else {
		fmt.Fprintf(e.out, "%s resumed: it catches up from its checkpoint\n", name)
	}
	return nil
}
