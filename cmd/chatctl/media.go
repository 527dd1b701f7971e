package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	chathttp "github.com/evchat/evchat/http"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
	"github.com/evchat/evchat/readmodel"
)

func (e *env) media(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: media needs a subcommand: gc", errUsage)
	}
	switch args[0] {
	case "gc":
		return e.mediaGC(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(e.out, "Usage: chatctl media gc [--older-than DURATION] [--dry-run]\n")
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: unknown media subcommand %q", errUsage, args[0])
}

// mediaGC removes attachment files no message names: those of sends that
// failed after their files were stored, and uploads left half-way.
func (e *env) mediaGC(ctx context.Context, args []string) error {
	var olderThan time.Duration
	var dryRun bool
	_, err := e.subcommand("media gc", "media gc [--older-than DURATION] [--dry-run]", args, func(fs *flag.FlagSet) {
		fs.DurationVar(&olderThan, "older-than", 24*time.Hour, "only files last written longer ago than this")
		fs.BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	})
	if err != nil {
		return err
	}
	if olderThan < time.Minute {
		return fmt.Errorf("%w: --older-than must be at least 1m (a file is stored just before its message)", errUsage)
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	// A file is named by the read model only once its message is projected:
	// a read model further behind than the age bound cannot tell.
	cp, err := projections.ReadCheckpoint(ctx, c.pool, migrations.ReadModel, projections.ChatName)
	if err != nil {
		return err
	}
	behind, since, err := lag(ctx, c.store, cp)
	if err != nil {
		return err
	}
	if behind > 0 && time.Since(since) > olderThan/2 {
		return fmt.Errorf("the read model is %s behind the log: it cannot tell which files are named; not collecting",
			time.Since(since).Round(time.Second))
	}
	storage := &chathttp.FileStorage{Dir: filepath.Join(e.cfg.DataDir, "media")}
	rm := readmodel.New(c.pool)
	var files, bytes int64
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	err = storage.Collect(ctx, time.Now().Add(-olderThan), rm.NamedAttachments, dryRun, func(f chathttp.Collected) {
		files++
		bytes += f.Size
		fmt.Fprintf(e.out, "%s %s (%d bytes)\n", verb, f.Path, f.Size)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%s %d files, %d bytes\n", verb, files, bytes)
	return nil
}
