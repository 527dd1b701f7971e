package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/projections"
)

func (e *env) projections(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: projections needs list, status, pause, resume, rebuild, replay or verify", errUsage)
	}
	switch args[0] {
	case "status":
		return e.status(ctx, args[1:])
	case "list":
		return e.list(ctx, args[1:])
	case "pause", "resume":
		return e.pauseResume(ctx, args[0], args[1:])
	case "rebuild":
		return e.rebuild(ctx, args[1:])
	case "replay":
		return e.replay(ctx, args[1:])
	case "verify":
		return e.verify(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(e.errOut, usage)
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: unknown projections command %q", errUsage, args[0])
}

// projectionName checks the optional projection name argument against
// the projections the command serves (the first is the default), and
// returns the name.
func projectionName(fs *flag.FlagSet, allowed ...string) (string, error) {
	switch fs.NArg() {
	case 0:
		return allowed[0], nil
	case 1:
		for _, a := range allowed {
			if fs.Arg(0) == a {
				return a, nil
			}
		}
		return "", fmt.Errorf("%w: unknown projection %q (this command serves: %s)", errUsage, fs.Arg(0), strings.Join(allowed, ", "))
	}
	return "", fmt.Errorf("%w: too many arguments", errUsage)
}

func (e *env) status(ctx context.Context, args []string) error {
	fs, err := e.subcommand("projections status", "projections status", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: status takes no arguments", errUsage)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	head, err := c.store.Head(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "log head: %s\n", head)
	if err := e.projectionTable(ctx, c); err != nil {
		return err
	}
	for _, l := range []struct{ label, lease string }{
		{"projector", projections.ProjectorLease}, {"search projector", chatd.SearchLease},
	} {
		lease, held, err := projections.ReadLease(ctx, c.pool, l.lease)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.out, leaseLine(l.label, lease, held))
	}
	return nil
}

// leaseLine describes who projects: the holder of the projector lease.
func leaseLine(label string, l projections.LeaseState, taken bool) string {
	switch {
	case !taken:
		return label + ": no process has projected yet"
	case l.ExpiresIn <= 0:
		return fmt.Sprintf("%s: none (the lease of %s, epoch %d, expired %s ago)",
			label, l.HolderName, l.Epoch, (-l.ExpiresIn).Round(time.Millisecond))
	}
	return fmt.Sprintf("%s: %s (epoch %d, since %s, lease expires in %s)",
		label, l.HolderName, l.Epoch, l.AcquiredAt.UTC().Format(time.RFC3339), l.ExpiresIn.Round(time.Millisecond))
}

const lagCountLimit = 1_000_000

// lag counts the events after cp (up to a limit) and the time of the first.
func lag(ctx context.Context, store eventstore.Store, cp eventstore.Position) (int64, time.Time, error) {
	var n int64
	var first time.Time
	for n < lagCountLimit {
		events, err := store.ReadAll(ctx, cp, 5000)
		if err != nil {
			return 0, first, err
		}
		if len(events) == 0 {
			break
		}
		if n == 0 {
			first = events[0].Created
		}
		n += int64(len(events))
		cp = events[len(events)-1].Position
	}
	return n, first, nil
}

// progress reports rebuild progress: a bar with rate and ETA on a terminal,
// a plain line every few seconds otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	total int64
	start time.Time
	last  time.Time
	e     *env
	label string
}

func (e *env) newProgress(ctx context.Context, c *conn, label string) *progress {
	total := int64(-1)
	if e.cfg.EventStoreURL == "" {
		_ = c.pool.QueryRow(ctx, `SELECT count(*) FROM public.events`).Scan(&total)
	}
	p := &progress{total: total, start: time.Now(), last: time.Now(), e: e, label: label}
	if f, ok := e.errOut.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(e.errOut),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progress) update(done int64) {
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if time.Since(p.last) < 2*time.Second {
		return
	}
	p.last = time.Now()
	rate := float64(done) / time.Since(p.start).Seconds()
	if p.total > 0 {
		eta := time.Duration(float64(max(p.total-done, 0))/rate) * time.Second
		fmt.Fprintf(p.e.errOut, "%s: %d/%d events (%.0f%%), %.0f events/s, ETA %s\n",
			p.label, done, p.total, 100*float64(done)/float64(p.total), rate, eta.Round(time.Second))
		return
	}
	fmt.Fprintf(p.e.errOut, "%s: %d events, %.0f events/s\n", p.label, done, rate)
}

func (p *progress) finish(done int64) {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
	secs := time.Since(p.start).Seconds()
	fmt.Fprintf(p.e.out, "%s: %d events in %.1fs (%.0f events/s)\n", p.label, done, secs, float64(done)/secs)
}

// projectionRun parses a projection command's flags and optional name,
// then opens the installation and a progress report; check validates the
// flags before anything is opened. The caller closes the connection.
func (e *env) projectionRun(ctx context.Context, label, synopsis string, args []string,
	define func(*flag.FlagSet), check func() error,
) (*conn, *progress, error) {
	fs, err := e.subcommand("projections "+label, synopsis, args, define)
	if err != nil {
		return nil, nil, err
	}
	if _, err := projectionName(fs, projections.ChatName); err != nil {
		return nil, nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, nil, err
		}
	}
	c, err := e.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, e.newProgress(ctx, c, label), nil
}

func (e *env) rebuild(ctx context.Context, args []string) error {
	var batch int
	fs, err := e.subcommand("projections rebuild", "projections rebuild [chat|search]", args, func(fs *flag.FlagSet) {
		fs.IntVar(&batch, "batch", projections.RebuildBatch, "events per transaction")
	})
	if err != nil {
		return err
	}
	name, err := projectionName(fs, projections.ChatName, projections.SearchName)
	if err != nil {
		return err
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	p := e.newProgress(ctx, c, "rebuild "+name)
	o := projections.RebuildOptions{Logger: e.log, BatchSize: batch, Progress: p.update}
	var n int64
	if name == projections.SearchName {
		n, err = projections.RebuildSearch(ctx, c.pool, c.store, projections.NewSearch(c.registry), o)
	} else {
		n, err = rebuildChat(ctx, c, o)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(e.errOut, "rebuild interrupted: the live read model is untouched; run it again to start over")
		}
		return err
	}
	p.finish(n)
	fmt.Fprintf(e.out, "the rebuilt %s projection is live\n", name)
	return nil
}

// rebuildChat rebuilds the chat read model, shown as rebuilding meanwhile.
func rebuildChat(ctx context.Context, c *conn, o projections.RebuildOptions) (int64, error) {
	if err := projections.MarkRebuilding(ctx, c.pool, projections.ChatName, true); err != nil {
		return 0, err
	}
	defer func() {
		_ = projections.MarkRebuilding(context.WithoutCancel(ctx), c.pool, projections.ChatName, false)
	}()
	return projections.Rebuild(ctx, c.pool, c.store, c.chat, o)
}

func (e *env) replay(ctx context.Context, args []string) error {
	var from string
	pos := eventstore.Start
	c, p, err := e.projectionRun(ctx, "replay", "projections replay --from POSITION [name]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "replay the events after this position (as printed by status, or 0 for the start)")
	}, func() error {
		if from == "" {
			return fmt.Errorf("%w: replay needs --from", errUsage)
		}
		if from != "0" {
			var err error
			if pos, err = eventstore.ParsePosition(from); err != nil {
				return fmt.Errorf("%w: --from %q is not a position: a position is the string that projections status, the audit stream, WebSocket frames and messages print, two base-36 numbers joined by '-' (like 1f-3k), or 0 for the start", errUsage, from)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer c.close()
	n, err := projections.Replay(ctx, c.pool, c.store, c.chat, pos, projections.RebuildOptions{Logger: e.log, Progress: p.update})
	if err != nil {
		return err
	}
	p.finish(n)
	return nil
}

func (e *env) verify(ctx context.Context, args []string) error {
	c, p, err := e.projectionRun(ctx, "verify", "projections verify [name]", args, nil, nil)
	if err != nil {
		return err
	}
	defer c.close()
	diffs, at, err := projections.Verify(ctx, c.pool, c.store, c.chat, projections.RebuildOptions{Logger: e.log, Progress: p.update})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "compared at %s\n", at)
	fmt.Fprintf(e.out, "%-14s %10s %10s  %s\n", "TABLE", "LIVE", "REBUILT", "CHECKSUM")
	different := 0
	for _, d := range diffs {
		verdict := "equal"
		if !d.Equal {
			verdict, different = "DIFFERENT", different+1
		}
		fmt.Fprintf(e.out, "%-14s %10d %10d  %s\n", d.Table, d.LiveRows, d.RebuiltRows, verdict)
		for _, r := range d.OnlyLive {
			fmt.Fprintf(e.out, "  only live:    %s\n", r)
		}
		for _, r := range d.OnlyRebuilt {
			fmt.Fprintf(e.out, "  only rebuilt: %s\n", r)
		}
	}
	if different > 0 {
		return fmt.Errorf("%d table(s) differ from a rebuild", different)
	}
	fmt.Fprintln(e.out, "no difference")
	return nil
}
