package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/embeddedpg"
	"github.com/evchat/evchat/migrations"
	"github.com/evchat/evchat/postgres/notifier"
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

// errNoData refuses a data folder that holds no installation: chatctl
// operates one, it never makes a new, empty one by mistake.
var errNoData = errors.New("holds no chat data (no postgres/PG_VERSION): run chatctl where chatd keeps its data " +
	"(--data-dir or CHAT_DATA_DIR, default ./.data), or give --database-url")

// openDatabase opens the installation's database: DATABASE_URL, or the
// embedded PostgreSQL of an existing data folder.
func (e *env) openDatabase(ctx context.Context) (*pgxpool.Pool, *embeddedpg.Server, error) {
	if e.cfg.DatabaseURL == "" {
		if _, err := os.Stat(filepath.Join(e.cfg.DataDir, "postgres", "PG_VERSION")); err != nil {
			return nil, nil, fmt.Errorf("data folder %q %w", e.cfg.DataDir, errNoData)
		}
	}
	return chatd.OpenDatabase(ctx, e.cfg, e.log)
}

// open connects to the database (migrating it) and the event store.
func (e *env) open(ctx context.Context) (*conn, error) {
	pool, pg, err := e.openDatabase(ctx)
	if err != nil {
		return nil, err
	}
	c := &conn{pool: pool, pg: pg, registry: domain.NewRegistry()}
	c.chat = projections.NewChat(c.registry)
	if _, err := migrations.Apply(ctx, pool); err != nil {
		c.close()
		return nil, err
	}
	if c.store, c.closeFn, err = chatd.OpenStore(ctx, e.cfg, pool, hintsOnly(pool, e.log), e.log); err != nil {
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
	pool, pg, err := e.openDatabase(ctx)
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

// hintsOnly is a notifier that is never run: the store's appends still
// wake a running chatd at once, and chatctl, which follows no live log,
// listens to nothing.
func hintsOnly(pool *pgxpool.Pool, log *slog.Logger) *notifier.Notifier {
	return notifier.New(notifier.Pool(pool), log)
}
