package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/embeddedpg"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/projections"
)

// env is what every command works with.
type env struct {
	cfg    chatd.Config
	log    *slog.Logger
	out    io.Writer
	errOut io.Writer
}

// conn is an open installation: database, event store, registry.
type conn struct {
	pool     *pgxpool.Pool
	store    eventstore.Store
	chat     *projections.Chat
	registry *domain.Registry
	pg       *embeddedpg.Server
	closeFn  func()
}

// open connects to the database (migrating it) and the event store.
func (e *env) open(ctx context.Context) (*conn, error) {
	pool, pg, err := chatd.OpenDatabase(ctx, e.cfg, e.log)
	if err != nil {
		return nil, err
	}
	c := &conn{pool: pool, pg: pg, registry: domain.NewRegistry()}
	c.chat = projections.NewChat(c.registry)
	if _, err := migrations.Apply(ctx, pool); err != nil {
		c.close()
		return nil, err
	}
	if c.store, c.closeFn, err = chatd.OpenStore(ctx, e.cfg, pool, e.log); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *conn) close() {
	if c.closeFn != nil {
		c.closeFn()
	}
	c.pool.Close()
	if c.pg != nil {
		if err := c.pg.Stop(context.Background()); err != nil {
			fmt.Println("stop embedded PostgreSQL:", err)
		}
	}
}

func (e *env) migrate(ctx context.Context, args []string) error {
	if _, err := e.subcommand("migrate", "migrate", args, nil); err != nil {
		return err
	}
	pool, pg, err := chatd.OpenDatabase(ctx, e.cfg, e.log)
	if err != nil {
		return err
	}
	defer func() {
		pool.Close()
		if pg != nil {
			_ = pg.Stop(context.Background())
		}
	}()
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(e.out, "migrations: up to date")
	}
	for _, name := range applied {
		fmt.Fprintln(e.out, "applied", name)
	}
	return nil
}
