package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	chathttp "github.com/evchat/evchat/http"
)

func (e *env) audit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: audit needs stream or user", errUsage)
	}
	var asJSON bool
	var w window
	define := func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "one JSON object per line")
		fs.Func("from", "only events recorded at or after this RFC 3339 time", w.set(&w.from))
		fs.Func("to", "only events recorded before this RFC 3339 time", w.set(&w.to))
	}
	switch args[0] {
	case "stream":
		fs, err := e.subcommand("audit stream", "audit stream [--json] [--from TIME] [--to TIME] <stream>", args[1:], define)
		if err != nil {
			return usageIfFlag(err)
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: audit stream needs one stream name, like conversation-1", errUsage)
		}
		return e.auditStream(ctx, fs.Arg(0), asJSON, w)
	case "user":
		fs, err := e.subcommand("audit user", "audit user [--json] [--from TIME] [--to TIME] <id>", args[1:], define)
		if err != nil {
			return usageIfFlag(err)
		}
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if fs.NArg() != 1 || err != nil || id <= 0 {
			return fmt.Errorf("%w: audit user needs one user id", errUsage)
		}
		return e.auditUser(ctx, id, asJSON, w)
	case "-h", "--help", "help":
		fmt.Fprint(e.errOut, usage)
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: unknown audit command %q", errUsage, args[0])
}

// window bounds the events an audit prints by the time they were
// recorded: from (inclusive) and to (exclusive), zero for no bound.
type window struct{ from, to time.Time }

func (w *window) set(t *time.Time) func(string) error {
	return func(v string) error {
		p, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("not an RFC 3339 time (like 2024-05-01T12:00:00Z): %q", v)
		}
		*t = p
		return nil
	}
}

// before reports whether e was recorded before the window, after whether
// at or after its end.
func (w window) before(e eventstore.RecordedEvent) bool {
	return !w.from.IsZero() && e.Created.Before(w.from)
}
func (w window) after(e eventstore.RecordedEvent) bool {
	return !w.to.IsZero() && !e.Created.Before(w.to)
}

// usageIfFlag marks a flag that did not parse as a usage error (exit 2).
func usageIfFlag(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", errUsage, err)
}

func (e *env) auditStream(ctx context.Context, stream string, asJSON bool, w window) error {
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	for from := uint64(0); ; {
		events, err := c.store.ReadStream(ctx, stream, eventstore.Forwards, from, 1000)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return fmt.Errorf("stream %s has no events", stream)
		}
		if err != nil {
			return err
		}
		for _, ev := range events {
			if w.after(ev) {
				return nil // a stream's events are recorded in revision order
			}
			if w.before(ev) {
				continue
			}
			if err := e.printEvent(ev, asJSON); err != nil {
				return err
			}
		}
		if len(events) < 1000 {
			return nil
		}
		from = events[len(events)-1].Revision + 1
	}
}

// auditUser lists the events a user caused (their actor id) across the
// whole log, in log order.
func (e *env) auditUser(ctx context.Context, id int64, asJSON bool, w window) error {
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	found := false
	for cursor := eventstore.Start; ; {
		events, err := c.store.ReadAll(ctx, cursor, 5000)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			break
		}
		for _, ev := range events {
			var md domain.Metadata
			if w.before(ev) || w.after(ev) {
				continue // the whole log's times need not rise with its order across streams
			}
			if json.Unmarshal(ev.Metadata, &md) == nil && md.ActorID == id {
				found = true
				if err := e.printEvent(ev, asJSON); err != nil {
					return err
				}
			}
		}
		cursor = events[len(events)-1].Position
	}
	if !found {
		return fmt.Errorf("user %d caused no events", id)
	}
	return nil
}

func (e *env) printEvent(ev eventstore.RecordedEvent, asJSON bool) error {
	a := chathttp.AuditEvent(ev)
	if asJSON {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.out, "%s\n", b)
		return err
	}
	var md domain.Metadata
	_ = json.Unmarshal(ev.Metadata, &md)
	_, err := fmt.Fprintf(e.out, "%s  %-10s %s@%d  %-26s actor=%d request=%s  %s\n",
		a.Time, a.Position, a.Stream, a.Revision, a.Type, md.ActorID, orDash(md.RequestID), a.Data)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
