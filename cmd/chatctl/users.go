package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/shred"
)

func (e *env) users(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: users needs a subcommand: forget", errUsage)
	}
	switch args[0] {
	case "forget":
		return e.forgetUser(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(e.out, "Usage: chatctl users forget <user id>\n")
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: unknown users subcommand %q", errUsage, args[0])
}

// forgetUser forgets a user for good (the right to be forgotten): see
// chatd.Forgetter. It runs beside a running chatd (which rewrites its read
// model when it projects chat.user_forgotten) or alone (the read model is
// rewritten when chatd next runs).
func (e *env) forgetUser(ctx context.Context, args []string) error {
	fs, err := e.subcommand("users forget", "users forget <user id>", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: users forget needs one user id", errUsage)
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("%w: %q is no user id", errUsage, fs.Arg(0))
	}
	c, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	store, ok := c.store.(*shred.Store)
	if !ok {
		return fmt.Errorf("the event store is not the shredding one")
	}
	cmds := commands.New(commands.Config{Store: store, Registry: c.registry, Limits: domain.DefaultLimits(), Logger: e.log})
	f := chatd.NewForgetter(c.pool, cmds, store, filepath.Join(e.cfg.DataDir, "media"), e.log)
	res, err := f.ForgetUser(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "user %d forgotten at position %s: %d sessions revoked, %d files removed\n",
		res.User, res.Position, res.SessionsRevoked, res.FilesRemoved)
	return nil
}
