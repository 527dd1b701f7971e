// Command chatctl operates a chat installation: migrations, projection
// status, rebuild, replay and verification, audit trails, and collection of
// attachment files that no message names, and forgetting users.
//
// It reads the same configuration as chatd (flags over DATABASE_URL,
// CHAT_DATA_DIR, EVENTSTORE_URL). With no DATABASE_URL it reaches the
// embedded PostgreSQL of the data folder: the one a running chatd started,
// or one it starts itself for the duration of the command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/evchat/evchat/internal/buildinfo"
	"github.com/evchat/evchat/internal/chatd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `chatctl operates a chat installation.

Usage:
  chatctl [global flags] <command> [arguments]

Commands:
  migrate                          apply database migrations
  projections list                 each projection's checkpoint, lag and state
  projections status               the list, the log head and the processes that project
  projections pause <name>         stop applying a projection in every process (chat, search)
  projections resume <name>        let it catch up from its checkpoint again
  projections rebuild [name]       rebuild chat (default) or search beside the live one and swap it in
  projections replay --from POS    apply the log after POS to the live read model again
  projections verify               rebuild into scratch tables and compare with the live ones
  audit stream <stream>            the events of one stream, in log order (--from/--to TIME)
  audit user <id>                  the events a user caused, in log order (--from/--to TIME)
  media gc                         remove attachment files no message names
  users forget <id>                forget a user: their personal data becomes unreadable everywhere
  version                          print the build (module version, commit, commit time)

Global flags (also from the environment, like chatd):
  --database-url URL   PostgreSQL (DATABASE_URL); unset: the embedded PostgreSQL of the data folder
  --data-dir DIR       data folder (CHAT_DATA_DIR, default ./.data)
  --eventstore-url URL EventStoreDB/KurrentDB (EVENTSTORE_URL); unset: the PostgreSQL event store
  --log-level LEVEL    debug, info, warn or error (default warn)

Run "chatctl <command> --help" for a command's flags.
`

// errUsage marks a command line mistake: exit code 2.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := flag.NewFlagSet("chatctl", flag.ContinueOnError)
	g.SetOutput(stderr)
	g.Usage = func() { fmt.Fprint(stderr, usage) }
	cfg := chatd.DefaultConfig()
	var level string
	g.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "")
	g.StringVar(&cfg.DataDir, "data-dir", envOr("CHAT_DATA_DIR", cfg.DataDir), "")
	g.StringVar(&cfg.EventStoreURL, "eventstore-url", os.Getenv("EVENTSTORE_URL"), "")
	g.StringVar(&level, "log-level", envOr("CHAT_LOG_LEVEL", "warn"), "")
	if err := g.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintln(stderr, "chatctl: log level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	rest := g.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	e := &env{cfg: cfg, log: log, out: stdout, errOut: stderr}
	var err error
	switch rest[0] {
	case "migrate":
		err = e.migrate(ctx, rest[1:])
	case "projections":
		err = e.projections(ctx, rest[1:])
	case "audit":
		err = e.audit(ctx, rest[1:])
	case "media":
		err = e.media(ctx, rest[1:])
	case "users":
		err = e.users(ctx, rest[1:])
	case "version":
		fmt.Fprintln(stdout, buildinfo.Read().Line("chatctl"))
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "chatctl: unknown command %q\n\n%s", rest[0], usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "chatctl:", err)
		return 2
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "chatctl: interrupted")
		return 130
	default:
		fmt.Fprintln(stderr, "chatctl:", err)
		return 1
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// subcommand parses a subcommand's flags, printing help for --help.
func (e *env) subcommand(name, synopsis string, args []string, define func(*flag.FlagSet)) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.errOut)
	if define != nil {
		define(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(e.errOut, "Usage: chatctl %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	// Flags may follow the arguments ("audit user 7 --json"): parse the
	// flags, set the first argument aside, and go on.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return nil, err
	}
	return fs, nil
}
