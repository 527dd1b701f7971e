package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	chathttp "github.com/evchat/evchat/http"
)

func (e *env) audit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: audit needs stream or user", errUsage)
	}
	var asJSON bool
	define := func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "one JSON object per line") }
	switch args[0] {
	case "stream":
		fs, err := e.subcommand("audit stream", "audit stream [--json] <stream>", args[1:], define)
		if err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: audit stream needs one stream name, like conversation-1", errUsage)
		}
		return e.auditStream(ctx, fs.Arg(0), asJSON)
	case "user":
		fs, err := e.subcommand("audit user", "audit user [--json] <id>", args[1:], define)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if fs.NArg() != 1 || err != nil || id <= 0 {
			return fmt.Errorf("%w: audit user needs one user id", errUsage)
		}
		return e.auditUser(ctx, id, asJSON)
	case "-h", "--help", "help":
		fmt.Fprint(e.errOut, usage)
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: unknown audit command %q", errUsage, args[0])
}

func (e *env) auditStream(ctx context.Context, stream string, asJSON bool) error {
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
func (e *env) auditUser(ctx context.Context, id int64, asJSON bool) error {
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
