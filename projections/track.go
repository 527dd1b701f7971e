package projections

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/migrations"
)

// Track keeps w at the stored checkpoint of projection name: the process
// that projects announces each batch on ProjectedChannel, and a poll every
// interval covers lost notifications. It returns ctx.Err() when ctx ends.
func Track(ctx context.Context, pool *pgxpool.Pool, w *Watermark, name string, interval time.Duration, log *slog.Logger) error {
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if p, err := ReadCheckpoint(ctx, pool, migrations.ReadModel, name); err == nil {
				w.Advance(p)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	for ctx.Err() == nil {
		err := trackOnce(ctx, pool, w)
		if ctx.Err() != nil {
			break
		}
		log.Warn("projection tracker lost its connection", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return ctx.Err()
}

func trackOnce(ctx context.Context, pool *pgxpool.Pool, w *Watermark) error {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ProjectedChannel}.Sanitize()); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if p, err := eventstore.ParsePosition(n.Payload); err == nil {
			w.Advance(p)
		}
	}
}
